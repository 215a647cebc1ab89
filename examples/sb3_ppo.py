"""Train PPO (tiny CnnPolicy) for a few thousand steps inside BairWorld-v0, then write a video.

    python examples/sb3_ppo.py --checkpoint runs/<name>/best --timesteps 4096 --out ppo.mp4

BairWorld-v0's reward is 0 (it is the world, not a task; ``info["psnr"]`` scores the prediction
against the recorded rollout), so this shows the plumbing: N rows of the native vector env share one
batched world-model call per step through the SB3 bridge, the policy chooses the 4-dim BAIR action
(``IntegratePositionVector``: the end-effector position follows from it as the arm moves, so the
model sees the inputs it was trained on) in [-1, 1] (rescaled by ``gymnasium.wrappers.vector.RescaleAction``,
as SB3's Gaussian policies expect), and its imagined rollout is written as recorded | predicted |
error. For a task with a reward see the goal envs (``examples/goal_ppo.py``).
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import bair_world  # noqa: F401  (registers the envs)
from bair_world.envs import BairWorldEnv, BairWorldSB3VecEnv, IntegratePosition, IntegratePositionVector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (None: the bundled one)")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="ppo_bair_world.mp4", help="video of one policy episode (.mp4/.gif)")
    args = parser.parse_args(argv)
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    try:
        native = gym.make_vec("BairWorld-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                              checkpoint=args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # float32 bounds, as the action box (float64 ones make Gymnasium warn of lowered precision)
    venv = BairWorldSB3VecEnv(gym.wrappers.vector.RescaleAction(IntegratePositionVector(native), np.float32(-1.0),
                                                                np.float32(1.0)))
    venv.seed(args.seed)
    model = PPO("CnnPolicy", VecMonitor(venv), n_steps=128, batch_size=256, n_epochs=2, seed=args.seed,
                device="cpu" if args.device == "auto" and not torch.cuda.is_available() else "auto",
                policy_kwargs={"features_extractor_kwargs": {"features_dim": 64}, "net_arch": [64]}, verbose=1)
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    print(f"{model.num_timesteps} env steps in {time.perf_counter() - start:.1f} s")
    venv.close()

    env = gym.wrappers.RescaleAction(IntegratePosition(BairWorldEnv(checkpoint=args.checkpoint, device=args.device,
                                                                    render_mode="rgb_array")),
                                     np.float32(-1.0), np.float32(1.0))
    obs, info = env.reset(seed=args.seed)
    world = env.unwrapped
    frames, truncated, psnrs = [*world.reference.frames[: world.n_past]], False, []
    while not truncated:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, truncated, info = env.step(action)
        frames.append(obs)
        psnrs.append(info["psnr"])
    print(f"policy episode: mean PSNR vs the reference {np.mean(psnrs):.2f} dB (the policy ignores the reference's actions)")
    from bair_world.video import write_rollout_video

    print(f"wrote {write_rollout_video(args.out, world.reference.frames, np.stack(frames), n_context=world.n_past)}")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
