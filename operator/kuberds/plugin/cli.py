"""kubectl kuberds: look at and act on kuberds' database and cache servers.

NAME is a DBInstance, DBCluster, ReadReplica or CacheCluster in the namespace (its kind is
found by its name; --kind chooses when two kinds share it). The flags -n/--namespace,
--kubeconfig and --context work as kubectl's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from kuberds import __version__
from kuberds.plugin import connect, logs, report, requests
from kuberds.plugin import status as screen
from kuberds.plugin.client import Client, Target
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import (
    DBSNAPSHOT,
    READREPLICA,
    SERVER_KINDS,
    KindInfo,
    kind_list,
    kind_named,
    name_of,
    pod_selector,
)
from kuberds.plugin.text import duration

EXAMPLES = """\
examples:
  kubectl kuberds status orders                        members, backups, conditions and events
  kubectl kuberds connect orders                       psql on the primary (mariadb, redis-cli)
  kubectl kuberds connect orders --reader --command 'select pg_is_in_recovery()'
  kubectl kuberds switchover orders --to orders-1 --wait
  kubectl kuberds snapshot orders --wait
  kubectl kuberds restore orders --to 2026-05-01T03:04:05Z --as orders-before
  kubectl kuberds restore --from-snapshot orders-20260501-030405 --as orders-copy
  kubectl kuberds logs orders --since 10m
  kubectl kuberds report orders -o orders.tar.gz
"""


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """kubectl's flags, on the plugin and on each command (so they may come before or after it)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=default, help="the namespace (default: the context's)")
    parser.add_argument("--kubeconfig", default=default, help="the kubeconfig file (default: $KUBECONFIG, "
                                                              "~/.kube/config)")  # fmt: skip
    parser.add_argument("--context", default=default, help="the kubeconfig context (default: its current one)")


def _kind(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help=f"the kind of NAME: {kind_list(SERVER_KINDS)} (or a short name: dbi, dbc, "
                                       "rr, cc); found by the name when omitted")  # fmt: skip


def _wait(parser: argparse.ArgumentParser, what: str, timeout: int) -> None:
    parser.add_argument("--wait", action="store_true", help=f"wait until {what}")
    parser.add_argument("--timeout", type=duration, default=timeout, metavar="DURATION",
                        help=f"how long --wait waits (default {timeout // 60}m; 90s, 10m, 1h)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl kuberds", description=__doc__.split("\n\n")[0],
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"kubectl-kuberds {__version__}")
    _globals(parser, suppress=False)
    commands = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    def command(name: str, help_: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, epilog=epilog)
        _globals(sub, suppress=True)
        return sub

    sub = command("status", "one screen: engine, endpoints, members, backups, conditions, recent events")
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("--events", type=int, default=screen.RECENT_EVENTS, metavar="N", help="how many events to show")

    sub = command(
        "connect",
        "a shell on the server (psql, mariadb, redis-cli) through a port-forward",
        "arguments after -- go to the client: kubectl kuberds connect orders -- -A -t",
    )
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("--member", metavar="POD", help="connect to this member (default: the primary)")
    sub.add_argument("--reader", action="store_true", help="connect to a ready replica")
    sub.add_argument("--command", metavar="STATEMENT", help="run one statement (redis: one command) and exit")
    sub.add_argument("--local-port", type=int, metavar="PORT", help="local port (default: a free one)")

    sub = command("switchover", "hand the primary role to another member (the operator carries it out)")
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("--to", metavar="POD", help="the member to take over (default: the best one)")
    _wait(sub, "the status shows a new primary, then print the events", 300)

    sub = command("promote", "make a ReadReplica a standalone writable server (cannot be undone)")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    sub = command("snapshot", "take a DBSnapshot (kept until deleted)")
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("--snapshot-name", metavar="SNAPSHOT", help="its name (default: NAME-YYYYMMDD-HHMMSS)")
    sub.add_argument("--retain", action="store_true", help="keep the backup when the DBSnapshot is deleted")
    _wait(sub, "the snapshot is Available", 3600)

    sub = command("restore", "create a new server from a point in time or a DBSnapshot")
    sub.add_argument("name", metavar="NAME", nargs="?", help="the server to restore from (--to), or whose "
                                                             "settings to copy (--from-snapshot)")  # fmt: skip
    _kind(sub)
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("--to", metavar="TIME", help="`latest`, or an RFC 3339 time within NAME's restorable window")
    source.add_argument("--from-snapshot", metavar="SNAPSHOT", help="a DBSnapshot in the namespace")
    sub.add_argument("--as", dest="new_name", required=True, metavar="NEW", help="the new server's name")
    sub.add_argument("--dry-run", action="store_true", help="print the new object instead of creating it")
    _wait(sub, "the new server is Available", 3600)

    paused = (("pause", "stop the operator from changing the server (spec.automationPaused: true)"),
              ("resume", "let the operator apply the spec again (spec.automationPaused: false)"))  # fmt: skip
    for name, help_ in paused:
        sub = command(name, help_)
        sub.add_argument("name", metavar="NAME")
        _kind(sub)

    sub = command("logs", "every container's log of the server's pods, merged in time order")
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("--member", metavar="POD", help="only this pod")
    sub.add_argument("-c", "--container", help="only this container")
    sub.add_argument("--since", type=duration, metavar="DURATION", help="only lines newer than this (10m, 1h)")
    sub.add_argument("--tail", type=int, metavar="N", help="only the last N lines (of the merged log)")
    sub.add_argument("-p", "--previous", action="store_true", help="the containers' logs before their last restart")
    sub.add_argument("--proxy", action="store_true", help="the proxy's pods too")
    sub.add_argument("--no-timestamps", action="store_true", help="leave out the kubelet's timestamps")

    sub = command("report", "a support bundle (tar.gz): objects, events, logs; secret values left out")
    sub.add_argument("name", metavar="NAME")
    _kind(sub)
    sub.add_argument("-o", "--output", metavar="FILE.tar.gz",
                     help="where to write it (default: ./kuberds-report-NS-NAME-TIME.tar.gz)")  # fmt: skip
    return parser


def resolve(client: Client, name: str, kind: str | None) -> tuple[KindInfo, dict]:
    """The object NAME, of --kind or of whichever server kind has one by that name."""
    if kind:
        info = kind_named(kind)
        return info, client.get(info, name)
    found, refused = [], []
    for info in SERVER_KINDS:
        try:
            obj = client.find(info, name)
        except PluginError as error:
            if "forbidden" not in str(error):
                raise
            refused.append(error)
            continue
        if obj is not None:
            found.append((info, obj))
    if len(found) == 1:
        return found[0]
    if found:
        raise PluginError(f"{name} is a {kind_list([i for i, _ in found])} in namespace {client.namespace}: "
                          f"choose one with --kind")  # fmt: skip
    if refused:
        raise refused[0]
    raise PluginError(f"no {kind_list(SERVER_KINDS)} named {name} in namespace {client.namespace}")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PluginError("promote asks for confirmation on a terminal: give --yes to promote without one")
    return input(question).strip().lower() in ("y", "yes")


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    pods = client.pods(pod_selector(info, args.name))
    events = client.events(info.kind, args.name)
    for pod in pods:
        events += client.events("Pod", pod["metadata"]["name"])
    snapshots = None
    if info.snapshot_field:
        try:
            snapshots = [s for s in client.list(DBSNAPSHOT)
                         if (s.get("spec") or {}).get("source", {}).get(info.snapshot_field) == args.name]  # fmt: skip
        except PluginError:
            snapshots = None  # a user who may not list DBSnapshots still gets the rest
    sys.stdout.write(screen.render(obj, pods, events, snapshots, recent=args.events))
    return 0


def cmd_connect(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    return connect.run(client, info, obj, args.member, args.reader, args.command, args.extra, args.local_port,
                       out=sys.stdout, err=sys.stderr)  # fmt: skip


def cmd_switchover(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    return requests.switchover(client, info, obj, args.to, args.wait, args.timeout, out=sys.stdout)


def cmd_promote(client: Client, args: argparse.Namespace) -> int:
    return requests.promote(client, client.get(READREPLICA, args.name), args.yes, _confirm, out=sys.stdout)


def cmd_snapshot(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    return requests.snapshot(client, info, obj, args.snapshot_name, args.retain, args.wait, args.timeout,
                             out=sys.stdout)  # fmt: skip


def cmd_restore(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind) if args.name else (None, None)
    return requests.restore(client, info, obj, args.to, args.from_snapshot, args.new_name, args.dry_run, args.wait,
                            args.timeout, out=sys.stdout, err=sys.stderr)  # fmt: skip


def cmd_pause(client: Client, args: argparse.Namespace, paused: bool = True) -> int:
    info, obj = resolve(client, args.name, args.kind)
    return requests.set_paused(client, info, obj, paused, out=sys.stdout)


def cmd_logs(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    request = logs.Request(args.member, args.container, args.since, args.tail, args.previous, args.proxy)
    lines, notes = logs.collect(client, info, obj, request)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for line in lines:
        print(line.format(timestamps=not args.no_timestamps))
    return 1 if notes and not lines else 0  # nothing could be read: the notes say why


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    info, obj = resolve(client, args.name, args.kind)
    bundle = report.collect(client, info, obj)
    path = args.output or f"{bundle.root}.tar.gz"
    size = report.write(bundle, path)
    print(f"wrote {path} ({size} bytes, {len(bundle.files)} files) for {info.kind} {name_of(obj)}")
    for note in bundle.notes:
        print(f"note: left out: {note}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "status": cmd_status, "connect": cmd_connect, "switchover": cmd_switchover, "promote": cmd_promote,
    "snapshot": cmd_snapshot, "restore": cmd_restore, "pause": cmd_pause,
    "resume": lambda client, args: cmd_pause(client, args, paused=False), "logs": cmd_logs, "report": cmd_report,
}  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments; those after `--` are the client's (connect)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra and args.verb != "connect":
        parser.error(f"arguments after -- are for connect's client, not for {args.verb}: {' '.join(extra)}")
    args.extra = extra
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        client = Client.connect(Target(args.kubeconfig, args.context, args.namespace))
        return COMMANDS[args.verb](client, args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
