"""The SVG-family action-conditioned video model with an explicit, batched step function.

Denton & Fergus 2018 ("Stochastic Video Generation with a Learned Prior") as adapted by the seed
(NYCU "conditional VAE for video prediction"): the frame predictor LSTM is fed
[h(x_t), z, normalised cond_t] and its output is decoded, with encoder skips, into x_{t+1}.
One `SVG.step` serves training (posterior on x_{t+1}), evaluation and the environments (prior).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from bair_world.models.config import CHANNELS, COND_DIM, ModelConfig
from bair_world.models.dcgan64 import DCGANDecoder, DCGANEncoder
from bair_world.models.lstm import LSTM, GaussianLSTM, GeneratorLike, standard_normal
from bair_world.models.heads import HEADS, head_name
from bair_world.models.motion import DecodeParts
from bair_world.models.state import Advance, StepOutput, SVGState
from bair_world.models.vgg64 import VGGDecoder, VGGEncoder

# Plausible condition statistics. BAIR's units are metres (positions ~0.2-0.8, action deltas ~0.05)
# and gripper states 0..2, so a std below COND_STD_MIN is a constant column (stored as 1, never
# divided by) and a mean or std beyond COND_LIMIT (10 km) is a unit error or corruption. Checkpoint
# loading refuses stored statistics outside the same bounds (`bair_world.checkpoint_files`).
COND_STD_MIN, COND_LIMIT = 1e-6, 1e4


def kl_gaussian(mu: torch.Tensor, logvar: torch.Tensor, mu_p: torch.Tensor | None = None,
                logvar_p: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu_p, e^logvar_p)) summed over the last dim, in float32; (B,).

    Without ``mu_p``/``logvar_p`` the reference is N(0, I).
    """
    mu, logvar = mu.float(), logvar.float()
    if mu_p is None:
        return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)
    mu_p, logvar_p = mu_p.float(), logvar_p.float()
    return 0.5 * (logvar_p - logvar + (logvar.exp() + (mu - mu_p).pow(2)) / logvar_p.exp() - 1.0).sum(-1)


def init_weights(module: nn.Module) -> None:
    """SVG's initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class SVG(nn.Module):
    """SVG-FP / SVG-LP conditioned on actions and end-effector positions.

    Args:
        cfg: the architecture.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        enc, dec = (VGGEncoder, VGGDecoder) if cfg.backbone == "vgg" else (DCGANEncoder, DCGANDecoder)
        self.encoder = enc(cfg.g_dim, CHANNELS, cfg.width)
        self.decoder = dec(cfg.g_dim, CHANNELS, cfg.width, cond_maps=COND_DIM if cfg.spatial_cond else 0)
        self.predictor = LSTM(cfg.g_dim + cfg.z_dim + COND_DIM, cfg.g_dim, cfg.rnn_size, cfg.predictor_layers)
        self.posterior = GaussianLSTM(cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.posterior_layers)
        self.prior = (GaussianLSTM(cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.prior_layers)
                      if cfg.prior == "learned" else None)
        self.head = HEADS[head_name(cfg)]
        """The output head `decode` delegates to (`bair_world.models.heads`); its modules are the model's."""
        for name, module in self.head.modules(cfg, self.decoder).items():
            self.add_module(name, module)
        self.register_buffer("cond_mean", torch.zeros(COND_DIM))
        self.register_buffer("cond_std", torch.ones(COND_DIM))
        self.apply(init_weights)
        self.head.initialise(self)

    def motion_head_output(self) -> nn.Module | None:
        """The motion head's last layer (its output channels: flow x, flow y, mask logits); None without one."""
        head = getattr(self, "motion_head", None)
        return head if head is None or isinstance(head, nn.ConvTranspose2d) else head[-1]

    # -- normalisation -------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training data's condition statistics (raw units, (7,) each).

        A (near-)constant column (std < `COND_STD_MIN`) gets std 1, so it is centred but not blown up.

        Raises:
            ValueError: NaN or inf, or |mean| or std above `COND_LIMIT` (not BAIR units).
        """
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.numel() != COND_DIM or std.numel() != COND_DIM:
            raise ValueError(f"normalisation needs {COND_DIM} values, got {mean.numel()} and {std.numel()}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("normalisation statistics contain NaN or inf")
        if (mean.abs() > COND_LIMIT).any() or (std > COND_LIMIT).any():
            raise ValueError(f"implausible normalisation statistics (|mean| and std must be <= {COND_LIMIT:g} in BAIR "
                             f"units, metres): mean {mean.tolist()}, std {std.tolist()}")
        self.cond_mean.copy_(mean)
        self.cond_std.copy_(torch.where(std < COND_STD_MIN, torch.ones_like(std), std))

    def fit_normalisation(self, conds: torch.Tensor) -> None:
        """Set the statistics from raw conditions (..., 7), e.g. a training split's Batch.cond."""
        flat = conds.reshape(-1, COND_DIM).double()  # (..., 7) -> (N, 7)
        self.set_normalisation(flat.mean(0).float(), flat.std(0, unbiased=False).float())

    def normalise_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """Raw (B, 7) -> standardised."""
        return (cond - self.cond_mean) / self.cond_std

    # -- stepping ------------------------------------------------------------------------------
    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def init_state(self, batch: int, device: torch.device | str | None = None) -> SVGState:
        """Fresh state for ``batch`` sequences (defaults to the model's device)."""
        device = self.cond_mean.device if device is None else device
        return SVGState(
            predictor=self.predictor.init_state(batch, device),
            posterior=self.posterior.init_state(batch, device),
            prior=self.prior.init_state(batch, device) if self.prior is not None else (),
            skips=None,
            t=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def _check(self, state: SVGState, x_prev: torch.Tensor, cond: torch.Tensor, x_next: torch.Tensor | None,
               noise: torch.Tensor | None):
        b, c = state.batch_size, CHANNELS
        if x_prev.dim() != 4 or tuple(x_prev.shape) != (b, c, 64, 64):
            raise ValueError(f"x_prev must be ({b}, {c}, 64, 64) for this state, got {tuple(x_prev.shape)}")
        if x_next is not None and tuple(x_next.shape) != tuple(x_prev.shape):
            raise ValueError(f"x_next must match x_prev {tuple(x_prev.shape)}, got {tuple(x_next.shape)}")
        if tuple(cond.shape) != (b, COND_DIM):
            raise ValueError(f"cond must be ({b}, {COND_DIM}) raw action+position, got {tuple(cond.shape)}")
        if noise is not None and tuple(noise.shape) != (b, self.cfg.z_dim):
            raise ValueError(f"noise must be ({b}, {self.cfg.z_dim}) standard-normal draws, got {tuple(noise.shape)}")

    def step(self, state: SVGState, x_prev: torch.Tensor, cond: torch.Tensor, x_next: torch.Tensor | None = None,
             generator: GeneratorLike = None, use_posterior: bool | None = None,
             noise: torch.Tensor | None = None) -> StepOutput:
        """One transition x_t -> x_{t+1}; calls the module, so hooks and DDP wrapping apply (see `forward`)."""
        return self(state, x_prev, cond, x_next, generator, use_posterior, noise)

    def forward(self, state: SVGState, x_prev: torch.Tensor, cond: torch.Tensor, x_next: torch.Tensor | None = None,
                generator: GeneratorLike = None, use_posterior: bool | None = None,
                noise: torch.Tensor | None = None) -> StepOutput:
        """One transition x_t -> x_{t+1} conditioned on cond_t.

        ``forward`` is the step, so ``DistributedDataParallel(model)(state, x_prev, cond, x_next)``
        works (one call per time step, then one backward).

        Args:
            state: the batch's state (``state.t`` = t per row).
            x_prev: (B, C, 64, 64) frame x_t in [0, 1] (ground truth or a fed-back prediction).
            cond: (B, 7) raw cond_t = concat(action_t, position_t); normalised inside.
            x_next: (B, C, 64, 64) ground-truth x_{t+1}, or None. Given, the posterior q(z|x_{t+1})
                is advanced and the KL computed.
            generator: noise source for z (None, one torch.Generator, or one per row).
            use_posterior: sample z from the posterior (default: whenever ``x_next`` is given).
                ``False`` with ``x_next`` samples z from the prior but still returns the KL.
            noise: (B, z_dim) standard-normal draws to use for z instead of drawing from ``generator``
                (the same numbers `standard_normal` would draw, so results are unchanged); keeps the
                step free of generator calls, which `torch.compile` cannot trace.

        Returns:
            `StepOutput` with the predicted frame, the new state and the KL.
        """
        self._check(state, x_prev, cond, x_next, noise)
        b = x_prev.shape[0]
        if x_next is not None:
            # One encoder pass over [x_t; x_{t+1}] (batch 2B): fewer kernel launches on GPU.
            h_both, skips_both = self.encoder(torch.cat([x_prev, x_next], 0))
            h_prev, h_next = h_both[:b], h_both[b:]  # (2B, g) -> (B, g), (B, g)
            new_skips = [s[:b] for s in skips_both]
        else:
            (h_prev, new_skips), h_next = self.encoder(x_prev), None
        adv = self.advance(state, h_prev, new_skips, cond, h_next, generator, use_posterior, noise, x_prev=x_prev)
        frame = self.decode(adv.h_pred, adv.state.skips, x_prev, cond, adv.state.context)
        return StepOutput(frame=frame, **adv.fields())

    def advance(self, state: SVGState, h_prev: torch.Tensor, new_skips: list[torch.Tensor], cond: torch.Tensor,
                h_next: torch.Tensor | None = None, generator: GeneratorLike = None,
                use_posterior: bool | None = None, noise: torch.Tensor | None = None,
                x_prev: torch.Tensor | None = None) -> "Advance":
        """The recurrent part of a step, from encoder outputs: latent, KL, predictor LSTM.

        `forward` = encode x_t (and x_{t+1}) -> ``advance`` -> `decode`; training calls the parts
        itself to encode each ground-truth frame once per sequence and decode many steps in one call.

        Args:
            state: the batch's state.
            h_prev: (B, g_dim) code of x_t; ``new_skips`` its encoder skips.
            cond: (B, 7) raw cond_t.
            h_next: (B, g_dim) code of the ground-truth x_{t+1}, or None (prior only).
            generator, use_posterior, noise: as in `forward`.
            x_prev: (B, C, 64, 64) the frame x_t, needed with ``context_mask`` (rows in their
                context keep it as ``state.context``).

        Returns:
            `Advance`: the predictor output to decode (with ``state.skips`` and ``state.context``),
            the new state, the KL.
        """
        use_posterior = (h_next is not None) if use_posterior is None else use_posterior
        if use_posterior and h_next is None:
            raise ValueError("use_posterior=True needs x_next")
        b = h_prev.shape[0]
        if self.cfg.skip == "previous" or state.skips is None:
            skips = new_skips
        else:  # "last_context": rows still in their context (t < n_past) take x_t's skips
            keep_new = (state.t < self.cfg.n_past).reshape(b, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
            skips = [torch.where(keep_new, new, old.to(new.dtype)) for new, old in zip(new_skips, state.skips)]
        context = self._context(state, x_prev)

        mu = logvar = mu_p = logvar_p = z = None
        posterior_state, prior_state = state.posterior, state.prior
        if h_next is not None:
            (z_q, mu, logvar), posterior_state = self.posterior(h_next, state.posterior, generator,
                                                                sample=use_posterior, noise=noise)
            if use_posterior:
                z = z_q
        if self.prior is not None:
            (z_p, mu_p, logvar_p), prior_state = self.prior(h_prev, state.prior, generator, sample=z is None,
                                                            noise=noise)
            z = z_p if z is None else z
        elif z is None:
            z = standard_normal(h_prev.new_empty(b, self.cfg.z_dim), generator) if noise is None else noise
        kl = (kl_gaussian(mu, logvar, mu_p, logvar_p) if mu is not None
              else torch.zeros(b, device=h_prev.device, dtype=torch.float32))

        cond_n = self.normalise_cond(cond.to(self.cond_mean.dtype)).to(h_prev.dtype)
        h_pred, predictor_state = self.predictor(torch.cat([h_prev, z.to(h_prev.dtype), cond_n], 1), state.predictor)
        new_state = replace(state, predictor=predictor_state, posterior=posterior_state, prior=prior_state,
                            skips=skips, t=state.t + 1, context=context)
        return Advance(h_pred=h_pred, state=new_state, kl=kl, mu=mu, logvar=logvar, z=z, prior_mu=mu_p,
                       prior_logvar=logvar_p)

    def _context(self, state: SVGState, x_prev: torch.Tensor | None) -> torch.Tensor | None:
        """The last real context frame after this step: x_t for rows still in their context."""
        if not self.cfg.context_mask:
            return None
        if x_prev is None:
            raise ValueError("a context_mask model needs x_prev in advance()")
        if state.context is None:
            return x_prev
        in_context = (state.t < self.cfg.n_past).reshape(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
        return torch.where(in_context, x_prev, state.context.to(x_prev.dtype))

    def decode(self, h_pred: torch.Tensor, skips: list[torch.Tensor], x_prev: torch.Tensor,
               cond: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """Decode predictor outputs (N, g_dim) into frames x_{t+1} (N, C, 64, 64) in [0, 1]: the one
        decoder seam of a step (`forward`, training's batched decoding, benchmarks); the decoder's
        features go to the configured output head (`self.head`, `bair_world.models.heads`).

        Args:
            h_pred: (N, g_dim) predictor outputs; N may stack several steps of a batch (the decoder
                treats rows independently, up to BatchNorm's batch statistics).
            skips: the encoder skips in use, N rows per level.
            x_prev: (N, C, 64, 64) x_t, the base of the residual variant and of the warp.
            cond: (N, 7) raw cond_t; needed with ``spatial_cond``.
            context: (N, C, 64, 64) the last real context frame; needed with ``context_mask``.
        """
        return self.head.frame(self, self._features(h_pred, skips, cond), x_prev, context)

    def decode_parts(self, h_pred: torch.Tensor, skips: list[torch.Tensor], x_prev: torch.Tensor,
                     cond: torch.Tensor | None = None, context: torch.Tensor | None = None) -> DecodeParts:
        """`decode` with how the frame was made: the flow and each branch's weight (`DecodeParts`),
        for the motion losses and diagnostics. Same arguments as `decode`."""
        return self.head.decode_parts(self, self._features(h_pred, skips, cond), x_prev, context)

    def _features(self, h_pred: torch.Tensor, skips: list[torch.Tensor], cond: torch.Tensor | None) -> torch.Tensor:
        """The decoder's last features (`SkipDecoder.features`), what every output head decodes."""
        return self.decoder.features(h_pred, skips, self._decoder_cond(cond, h_pred))

    def _decoder_cond(self, cond: torch.Tensor | None, h_pred: torch.Tensor) -> torch.Tensor | None:
        """The normalised cond the decoder takes with ``spatial_cond`` (None otherwise)."""
        if not self.cfg.spatial_cond:
            return None
        if cond is None:
            raise ValueError("a spatial_cond model decodes with cond (N, 7)")
        return self.normalise_cond(cond.to(self.cond_mean.dtype)).to(h_pred.dtype)
