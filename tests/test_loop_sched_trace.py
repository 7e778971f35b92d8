"""benchmarks/loop_sched_trace.py's reading of ``perf sched timehist``: the loop's waits split between this
process's threads and the rest (the tracing itself needs perf and root, so only the parser is tested)."""
from __future__ import annotations

import pytest

from benchmarks.loop_sched_trace import attribute

pytestmark = pytest.mark.single_backend

# perf sched timehist: switch-out time, cpu, task [tid/pid], wait time, scheduling delay, run time (ms)
TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
      10.003000 [0000]  python[101/100]                     0.100      0.010      3.000
      10.004000 [0000]  cc1[555]                            2.000      0.050      1.000
      10.004200 [0000]  python[100]                         3.600      3.500      0.200
      10.004300 [0001]  <idle>                              0.000      0.000      4.000
      10.005000 [0001]  python[100]                         0.700      0.100      0.700
"""


def test_a_wait_is_split_between_our_threads_and_the_rest():
    got = attribute(TIMEHIST, loop_tid=100, pid=100, niceness={101: 10})
    assert got["delays"] == pytest.approx([0.0035, 0.0001])
    # the first wait (10.0005-10.004 on cpu 0): 2.5 ms of our helper, 1 ms of cc1; the second: the idle task only
    assert got["own"] == pytest.approx([0.0025, 0.0])
    assert dict(got["culprits"]) == pytest.approx({"own python[101/100] (nice 10)": 0.0025, "other cc1[555]": 0.001})
