"""Train PPO (SB3, MultiInputPolicy) to reach goal frames in the learned world; score it in both worlds.

    python examples/goal_ppo.py --checkpoint runs/<name>/best --timesteps 4096 --episodes 8 --out-dir ppo_videos

The agent sees ``{"image", "goal", "position"}`` and acts with the 4-dim action, rescaled to [-1, 1]
for PPO. Trained only in ``BairWorldGoal-v0`` (the learned model plays the world), it is then
evaluated there and in ``PushWorldGoal-v0`` (the true pushing world, same goals) beside uniform
random actions: the gap between the two worlds is the model's exploitable error. Prints a results
table and writes videos (episode | goal) of the first episode of every row.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.goal_eval import RandomPolicy, compare_policies
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.checkpoint import resolve_checkpoint


class SB3Policy:
    """An SB3 model trained on [-1, 1] actions as a goal policy in the raw action box."""

    def __init__(self, model, low: np.ndarray, high: np.ndarray):
        self.model, self.low, self.high = model, low, high

    def __call__(self, envs, obs) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=True)  # (E, 4) in [-1, 1]
        return self.low + (np.clip(action, -1, 1) + 1) / 2 * (self.high - self.low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (None: the bundled one)")
    parser.add_argument("--timesteps", type=int, default=4096, help="PPO environment steps")
    parser.add_argument("--num-envs", type=int, default=4, help="training envs (also episodes evaluated together)")
    parser.add_argument("--train-references", type=int, default=1000,
                        help="references (goals) sampled in training; evaluation uses others")
    parser.add_argument("--episodes", type=int, default=8, help="evaluation episodes per world")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each training env's model step (~1.9x faster env steps after ~5 s per env)")
    parser.add_argument("--save", default=None, help="save the trained PPO model here (.zip)")
    parser.add_argument("--out-dir", default="ppo_videos", help="where the episode | goal videos go")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train_refs = SimReferences(size=args.train_references)
    # evaluation goals come after the training ones: held-out references of the same world
    eval_refs = SimReferences(size=args.episodes, seed_offset=train_refs.seed_offset + args.train_references)

    def make_train_env():
        env = BairWorldGoalEnv(checkpoint=checkpoint, references=train_refs, device="cpu", compile=args.compile)
        return gym.wrappers.RescaleAction(env, np.full(4, -1, np.float32), np.full(4, 1, np.float32))

    venv = VecMonitor(DummyVecEnv([make_train_env] * args.num_envs))
    venv.seed(args.seed)
    model = PPO("MultiInputPolicy", venv, n_steps=128, batch_size=128, n_epochs=4, learning_rate=3e-4,
                ent_coef=0.0, seed=args.seed, device="cpu", verbose=1,
                policy_kwargs={"features_extractor_kwargs": {"cnn_output_dim": 64}, "net_arch": [64, 64]})
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    print(f"PPO: {model.num_timesteps} env steps in {time.perf_counter() - start:.1f} s")
    venv.close()
    if args.save:
        model.save(args.save)

    learned = [BairWorldGoalEnv(checkpoint=checkpoint, references=eval_refs, device="cpu") for _ in range(args.num_envs)]
    true = [PushWorldGoalEnv(references=eval_refs) for _ in range(args.num_envs)]
    box = learned[0].action_space
    ppo = SB3Policy(model, box.low.astype(np.float64), box.high.astype(np.float64))
    runs = [("random", "learned", learned, RandomPolicy(args.seed)), ("random", "true", true, RandomPolicy(args.seed)),
            ("ppo", "learned", learned, ppo), ("ppo", "true", true, ppo)]
    table = compare_policies(runs, range(args.episodes), args.out_dir, seed=args.seed)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
