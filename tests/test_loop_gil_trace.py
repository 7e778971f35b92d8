"""benchmarks/loop_gil_trace.py's reading of ``perf script``: a late probe's time split by what the loop's thread
and the thread that released the GIL to it did (tracing needs perf and root, so only the reading is tested)."""
from __future__ import annotations

import pytest

from benchmarks.loop_gil_trace import Timeline, analyse
from benchmarks.loop_recorder import Recorder

pytestmark = pytest.mark.single_backend

# perf script -F pid,tid,cpu,time,event,trace: the loop (100) sleeps in epoll_wait on cpu 0 while our pool thread
# (101) runs there; its timer (due 10.000) wakes it at 10.0005 on cpu 1; it runs, then blocks on the GIL (not in
# epoll_wait) at 10.001; 101 is preempted by another process (555) 10.002-10.003, releases the GIL at 10.0032;
# the loop then waits for cpu 1, busy with another process (556), until 10.0042.
SCRIPT = """\
   100/100   [000]     9.990000: syscalls:sys_enter_epoll_wait: epfd: 0x00000003
   100/100   [000]     9.990000: sched:sched_switch: prev_comm=python prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=python next_pid=101 next_prio=130
     0/0     [001]    10.000500: sched:sched_waking: comm=python pid=100 prio=120 target_cpu=001
     0/0     [001]    10.000500: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=python next_pid=100 next_prio=120
   100/100   [001]    10.000600: syscalls:sys_exit_epoll_wait: 0x0
   100/100   [001]    10.001000: sched:sched_switch: prev_comm=python prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
     0/0     [001]    10.001500: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=cc1 next_pid=556 next_prio=120
   100/101   [000]    10.002000: sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=130 prev_state=R+ ==> next_comm=cc1 next_pid=555 next_prio=120
   555/555   [000]    10.003000: sched:sched_switch: prev_comm=cc1 prev_pid=555 prev_prio=120 prev_state=R ==> next_comm=python next_pid=101 next_prio=130
   100/101   [000]    10.003200: sched:sched_waking: comm=python pid=100 prio=120 target_cpu=001
   556/556   [001]    10.004200: sched:sched_switch: prev_comm=cc1 prev_pid=556 prev_prio=120 prev_state=R ==> next_comm=python next_pid=100 next_prio=120
"""


def test_a_late_probe_is_split_by_the_loops_state_and_its_gil_releasers():
    rec = Recorder(native=True)
    rec.tids.append((9.9, 10.1, 101, "write_games"))
    tl = Timeline(SCRIPT, pid=100)
    assert tl.own == {100, 101}
    probe = {"wakes": [10.0042], "lags": [0.0042], "queued": [0.001]}
    got = analyse(tl, probe, rec, {}, loop_tid=100, over=1.0)
    assert got["late"] == 1
    assert dict(got["parts"]) == pytest.approx({
        "loop asleep in epoll_wait past its timer": 0.0005,
        "loop running": 0.0005,
        "GIL wait: its releaser runs (write_games)": 0.0012,
        "GIL wait: its releaser queues (write_games)": 0.001,
        "loop waiting for a CPU": 0.001,
    })
    assert got["p99_without_overshoot"] == pytest.approx(3.7)  # ms: the lag without its 0.5 ms in epoll_wait past due
    assert dict(got["queue_by"]) == pytest.approx({"releaser's CPU ran: another process": 0.001,
                                                   "loop's CPU ran: another process": 0.001})


def test_probes_on_time_are_left_out():
    tl = Timeline(SCRIPT, pid=100)
    probe = {"wakes": [10.0042], "lags": [0.0042], "queued": [0.0035]}  # 0.7 ms without run-queue waits
    assert analyse(tl, probe, Recorder(native=True), {}, loop_tid=100, over=1.0)["late"] == 0
