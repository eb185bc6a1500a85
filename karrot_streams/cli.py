"""``karrot-streams``: provision a cluster, generate traffic, list and redrive dead letters.
The worker itself runs under faust: ``faust -A karrot_streams.app worker``, which
``karrot-streams worker`` runs in its place (the container image's command)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from karrot_streams import traffic
from karrot_streams.connections import KafkaMisconfigured, check_kafka, kafka_connection
from karrot_streams.dlq import commands as dlq_commands
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.monitoring import logs
from karrot_streams.provision import provision
from karrot_streams.redaction import install_log_redaction
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings


async def _generate(settings: Settings, args: argparse.Namespace) -> None:
    resources = Resources.create(settings)
    await resources.ready()
    await resources.close()
    spec = traffic.TrafficSpec(count=args.count, poison_share=args.poison, seed=args.seed)
    writers = {topic: resources.writers[topic] for topic in INPUT_TOPICS}
    batch = list(traffic.records(spec, writers))
    seconds = await traffic.produce(
        kafka_connection(settings), batch, rate=args.rate, names=settings.topic_names
    )
    poison = sum(1 for r in batch if r.poison)
    print(
        f"produced {len(batch)} records ({poison} poison) in {seconds:.2f}s"
        f" = {len(batch) / seconds:,.0f}/s"
    )


def exec_worker(faust_args: Sequence[str]) -> None:
    """Replace this process with ``faust -A karrot_streams.app worker ARGS``.

    exec, not a child: the worker keeps this process id (PID 1 in a container) and receives
    SIGTERM itself, so it commits and leaves the group instead of being killed with its parent.
    """
    command = [sys.executable, "-m", "faust", "-A", "karrot_streams.app", "worker", *faust_args]
    os.execv(sys.executable, command)  # noqa: S606  the worker, with this interpreter


def main(argv: Sequence[str] | None = None) -> None:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["worker"]:
        # Before argparse: every following argument is faust's (-l info, --without-web ...).
        exec_worker(args_in[1:])
        return
    parser = argparse.ArgumentParser(prog="karrot-streams", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run the worker (faust's worker command and its options)")
    commands.add_parser("init", help="create topics, apply migrations, register schemas")
    generate = commands.add_parser("generate", help="produce marketplace traffic")
    generate.add_argument("--count", type=int, default=1000)
    generate.add_argument("--rate", type=float, default=None, help="records per second")
    generate.add_argument("--poison", type=float, default=0.05, help="share of poison records")
    generate.add_argument("--seed", type=int, default=7)
    dlq_commands.add_parser(commands)
    args = parser.parse_args(args_in)
    settings = Settings()
    logs.configure_process(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()
    # TLS files are read here, once, before any event loop runs (the connection is cached).
    kafka = kafka_connection(settings)
    try:
        asyncio.run(check_kafka(kafka))
    except KafkaMisconfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.command == "init":
        asyncio.run(provision(settings))
    elif args.command == "generate":
        asyncio.run(_generate(settings, args))
    elif args.command == "dlq":
        sys.exit(asyncio.run(dlq_commands.run(settings, args, print)))
