"""The graphlake command line: the same core as the Function App, driven from a shell.

The group and its one-line errors are here; the commands are in ingest.py, read.py, ops.py and rules.py, what they
print in render.py, the times they take in times.py, and what they build from the settings in wiring.py.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback

import click

from shared.core.errors import GraphlakeError, one_line


class OneLineErrors(click.Group):
    """Errors print as one line: a known one (exit 2) says what to fix; anything else (exit 3) is a bug, and says
    so. --debug shows the traceback as well."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click prints these itself
        except BrokenPipeError:
            _quiet_after_closed_pipe()
        except GraphlakeError as exc:
            self._report(ctx, f"graphlake: {exc}", 2)
        except Exception as exc:  # noqa: BLE001 - a traceback is for --debug, not for every user
            self._report(ctx, f"graphlake: unexpected error, please report it: {one_line(exc, with_type=True)} "
                              "(--debug shows where)", 3)

    @staticmethod
    def _report(ctx: click.Context, line: str, code: int) -> None:
        if ctx.params.get("debug"):
            traceback.print_exc()
        click.echo(line, err=True)
        sys.exit(code)


def _quiet_after_closed_pipe() -> None:
    """The reader closed the pipe (`graphlake query ... | head`): nothing is wrong with the command, and nothing more
    can be shown. Exit as a Unix tool killed by SIGPIPE does, with stdout pointed at /dev/null so that the
    interpreter's last flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


@click.group(cls=OneLineErrors)
@click.option("-v", "--verbose", is_flag=True, help="Log every Graph call and write.")
@click.option("--debug", is_flag=True, help="Print the Python traceback of an error, not just its one line.")
def main(verbose: bool, debug: bool) -> None:
    """Microsoft Graph security alerts into a lake you own."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not verbose:
        # azure-identity logs each failed credential chain as a page of warnings; the error says it in one line.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)


def _register() -> None:
    from shared.cli import ingest, ops, read, rules

    for command in (ingest.demo, ingest.simulate, ingest.pull, ingest.normalize, read.query, read.search,
                    ops.compact, ops.index, ops.audit, ops.status, ingest.replay, rules.rules):
        main.add_command(command)


_register()


def run() -> None:
    """The console entry point (`graphlake`, `python -m shared.cli`): the command, then an exit that skips the C++
    runtime's teardown. pyarrow's threads abort the interpreter's own teardown now and then ('terminate called
    without an active exception', exit 134: about one run in a hundred of a script that only reads parquet with
    pyarrow) after the command has done its work and printed its last line; the exit code must be the command's."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can be shown
    os._exit(code)

