"""How every ``gamestore`` command reports: progress on stderr, results on stdout.

One :class:`Output` per command run, built from the parsed arguments
(:func:`add_output_arguments` adds ``-q/--quiet`` and ``--json``):

- progress goes to stderr: a tqdm bar when stderr is a terminal; plain lines
  when it is not (logs, CI, pipes), at most one every :data:`PLAIN_INTERVAL`
  seconds plus a closing ``done`` line (``verify: 40/40 shards (100%) done in
  3.2 s``); nothing with ``-q``;
- results go to stdout: readable lines, or with ``--json`` exactly one JSON
  document a script can parse (a command that runs until stopped, such as
  ``compact --watch``, prints one JSON line per event instead); progress
  never goes to stdout;
- warnings go to stderr, also with ``-q``.

Library functions never print: they take the callables handed out here:
``out.bar(desc, unit)`` (``progress(items, total=None)`` wrapping an
iterable, as :mod:`gamestore.ops` takes), ``out.tracker(unit)``
(``progress(total=, desc=)`` returning a counter with ``update(n)`` and
``close()``, as the RingRift import and export take) and ``out.steps(desc)``
(``progress(step_name)``, as :func:`gamestore.report.write_report` takes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any, Callable, Iterable, Iterator, TypeVar

__all__ = ["Output", "Counter", "add_output_arguments", "PLAIN_INTERVAL"]

T = TypeVar("T")

#: Seconds between two plain progress lines of one task.
PLAIN_INTERVAL = 5.0


def add_output_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """Add ``-q/--quiet`` (and ``--json``) to a subcommand's parser."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    if json_output:
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON document on stdout (progress stays on stderr)")


class Counter:
    """Progress of one task: a tqdm bar on a terminal, plain lines otherwise, nothing when quiet."""

    def __init__(self, out: "Output", desc: str, total: int | None, unit: str) -> None:
        self.out = out
        self.desc = desc
        self.total = total
        self.unit = unit
        self.done = 0
        self.start = self.last = time.monotonic()
        self._bar: Any = None
        self._closed = False
        if not out.quiet and out.terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=out.stderr, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, *, label: str | None = None) -> None:
        """Count ``n`` more units; ``label`` names the step just started (always shown in plain lines)."""
        self.done += n
        if self.out.quiet:
            return
        if self._bar is not None:
            if label is not None:
                self._bar.set_description_str(f"{self.desc}: {label}")
            self._bar.update(n)
            return
        now = time.monotonic()
        if label is not None:
            self.out.info(f"{self.desc}: {label} ({now - self.start:.1f} s)")
        elif now - self.last >= self.out.interval:
            self.last = now
            self.out.info(f"{self.desc}: {self._count()}, {now - self.start:.1f} s")

    def advance_to(self, done: int, total: int | None = None) -> None:
        """A ``progress(done, total)`` callback: ``done`` units of ``total`` so far."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        self.update(done - self.done)

    def step(self, name: str) -> None:
        """Start the step called ``name`` (a ``progress(name)`` callback)."""
        self.update(1, label=name)

    def _count(self) -> str:
        units = self.unit if self.unit.endswith("s") else self.unit + "s"
        if self.total:
            return f"{self.done:,}/{self.total:,} {units} ({100 * self.done / self.total:.0f}%)"
        return f"{self.done:,} {units}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif not self.out.quiet:
            self.out.info(f"{self.desc}: {self._count()} done in {time.monotonic() - self.start:.1f} s")

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Output:
    """Progress and results of one command run (see the module docstring)."""

    def __init__(self, *, quiet: bool = False, json_output: bool = False, stdout: IO[str] | None = None,
                 stderr: IO[str] | None = None, interval: float = PLAIN_INTERVAL) -> None:
        self.quiet = quiet
        self.json = json_output
        self._stdout = stdout
        self._stderr = stderr
        self.interval = interval

    @classmethod
    def from_args(cls, args: argparse.Namespace, **kw: Any) -> "Output":
        return cls(quiet=bool(getattr(args, "quiet", False)), json_output=bool(getattr(args, "json", False)), **kw)

    @property
    def stdout(self) -> IO[str]:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> IO[str]:
        return self._stderr or sys.stderr

    @property
    def terminal(self) -> bool:
        isatty = getattr(self.stderr, "isatty", None)
        return bool(isatty and isatty())

    # -- progress ---------------------------------------------------------------------------
    def counter(self, desc: str, *, total: int | None = None, unit: str = "it") -> Counter:
        return Counter(self, desc, total, unit)

    def progress(self, items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
        """Yield ``items`` while showing how far along they are."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.counter(desc, total=total, unit=unit) as c:
            for item in items:
                yield item
                c.update()

    def bar(self, desc: str, unit: str = "it") -> Callable[..., Iterable]:
        """A ``progress(items, total=None)`` callable for library functions that loop over items."""
        return lambda items, total=None: self.progress(items, desc=desc, total=total, unit=unit)

    def tracker(self, unit: str = "it") -> Callable[..., Counter]:
        """A ``progress(total=None, desc="")`` factory of counters for library functions that count."""
        return lambda total=None, desc="": self.counter(desc, total=total, unit=unit)

    def steps(self, desc: str, total: int | None = None) -> Counter:
        """A counter for work in named steps: call ``.step(name)`` as each starts (or pass ``.step``)."""
        return self.counter(desc, total=total, unit="step")

    # -- messages and results ------------------------------------------------------------------
    def info(self, message: str) -> None:
        """A progress or status line on stderr (not with ``-q``)."""
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        """A warning on stderr, also with ``-q``."""
        print(message, file=self.stderr, flush=True)

    def event(self, obj: Any, lines: Iterable[str] | str) -> None:
        """One result of a long-running command (a ``--watch`` round): a JSON line with ``--json``, else ``lines``."""
        if self.json:
            print(json.dumps(obj, default=str), file=self.stdout, flush=True)
        else:
            self.result(obj, lines)

    def result(self, obj: Any, lines: Iterable[str] | str | None = None) -> None:
        """The command's result: ``obj`` as JSON with ``--json`` (or when there are no ``lines``), else ``lines``."""
        if self.json or lines is None:
            print(json.dumps(obj, indent=2, default=str), file=self.stdout, flush=True)
            return
        text = lines if isinstance(lines, str) else "\n".join(lines)
        if text:
            print(text, file=self.stdout, flush=True)
