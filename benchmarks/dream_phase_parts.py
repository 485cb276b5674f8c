"""Where a dream phase's time goes: the actor's and the world model's forwards over the phase's
start states, one imagined step, and the whole phase (one CPU thread by default).

    python benchmarks/dream_phase_parts.py --config configs/halfcheetah_mbpo.yaml \\
        --out benchmarks/results/dream_phase_parts_mbpo_cpu1.json

A short random warm-up fills the buffer; the model need not be trained (its weights do not
change what a forward costs). ``--predict-chunk 0 1250`` times the actor's and the model's
forwards and the whole phase at each ``dreaming.predict_chunk`` side by side (the same values),
rounds interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from spiking_dreamer.arguments import config_file, int_in, output_file, positive_int
from spiking_dreamer.bench import median_ms
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.files import atomic_write_json
from spiking_dreamer.provenance import result_header
from spiking_dreamer.training.trainer import Trainer


def chunked(rows: torch.Tensor, chunk: int) -> tuple[torch.Tensor, ...]:
    """``rows`` split as a dream phase splits them (``dreaming.predict_chunk``)."""
    return rows.split(chunk) if 0 < chunk < rows.shape[0] else (rows,)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=config_file, default="configs/halfcheetah_mbpo.yaml")
    p.add_argument("--warmup", type=positive_int, default=600)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--rounds", type=positive_int, default=1, help="interleaved rounds (median)")
    p.add_argument("--threads", type=int_in(1, 1024), default=1)
    p.add_argument("--predict-chunk", type=int_in(0), nargs="+", default=None, metavar="ROWS")
    p.add_argument("--out", type=output_file)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    w = args.warmup
    overrides = [f"train.start_steps={w}", f"train.update_after={w}", f"dreaming.start_step={w}"]
    overrides += ["log.tensorboard=false", "log.progress=false", "train.eval_every=1000000000"]
    cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(cfg, Path(tmp) / "run")
        t.begin()
        while t.step < w:
            t.advance()
        d, n = t.dreaming, cfg.dreaming.rollout_batch
        g = torch.Generator().manual_seed(0)
        obs = t.buffer.obs[torch.randint(len(t.buffer), (n,), generator=g)]
        with torch.no_grad():
            action = t.actor(obs)

            def ms(fn: Callable[[], object]) -> float:
                return median_ms(fn, args.repeats, warmup=1)

            chunks = args.predict_chunk or [cfg.dreaming.predict_chunk]
            rounds: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for c in chunks:
                    d.dreamer.cfg = replace(cfg.dreaming, predict_chunk=c)
                    sfx = "" if args.predict_chunk is None else f"@chunk{c}"
                    timed = {
                        "actor_forward_ms": lambda c=c: [t.actor(o) for o in chunked(obs, c)],
                        "model_predict_ms": lambda c=c: d.model.predict(obs, action, chunk=c),
                        "imagine_step_ms": lambda: d.dreamer.imagine_step(obs),
                        "dream_phase_ms": lambda: d.dreamer.phase(t.buffer, d.buffer, w, 1),
                    }
                    for name, fn in timed.items():
                        rounds.setdefault(name + sfx, []).append(ms(fn))
            parts = {k: statistics.median(v) for k, v in rounds.items()}
        t.close()
    record = {
        **result_header("dream_phase_parts", threads=args.threads),
        "config": args.config,
        "rollout_batch": n,
        "horizon": cfg.dreaming.horizon,
        "ensemble_size": cfg.world_model.ensemble_size,
        "rounds": args.rounds,
        "parts_ms": parts,
    }
    print(json.dumps(parts, indent=1))
    if args.out:
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
