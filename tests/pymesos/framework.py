"""A framework built on pymesos (its MesosSchedulerDriver), run against a Holdfast master.

Two modes:

  command   launches N command tasks (`echo hello`) and waits for all of them to finish.
  executor  launches N tasks on one custom executor (tests/pymesos/executor.py, started
            by this same interpreter). Each task's executor says "ready <task>"; the
            framework answers "finish <task>"; the executor answers "finished <task>" and
            reports the task TASK_FINISHED.

Status updates are acknowledged by pymesos itself (implicit acknowledgements, its
default), after statusUpdate returns.

Exits 0 when every task reached TASK_FINISHED (and, with executors, every message was
answered), 1 on any other terminal state, a driver error or the timeout. It prints a
summary line, then "FAILED: <why>" when it failed.
"""

import argparse
import collections
import os
import pwd
import sys
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data

CPUS, MEM = 0.1, 32.0
EXECUTOR_CPUS, EXECUTOR_MEM = 0.1, 64.0
EXECUTOR_ID = "pymesos-executor"
TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
}
EXECUTOR_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executor.py")


def log(text):
    print("framework: " + text, file=sys.stderr, flush=True)


def scalar(offer, name):
    return sum(r.scalar.value for r in offer.resources
               if r.name == name and r.type == "SCALAR")


def resources(cpus, mem):
    return [dict(name="cpus", type="SCALAR", scalar=dict(value=cpus)),
            dict(name="mem", type="SCALAR", scalar=dict(value=mem))]


class Framework(Scheduler):
    def __init__(self, mode, total):
        self.mode = mode
        self.total = total
        self.launched = 0
        self.offers = 0
        self.updates = 0
        # Updates of a (task, state) seen before: the agent sends an update again while
        # it waits for its acknowledgement (after 10 s, or when it registers again).
        self.repeated = 0
        self.seen = set()
        self.states = collections.Counter()
        self.last_state = {}
        self.ready = set()
        self.answered = set()
        self.executor_started = False
        self.agent_id = None
        self.suppressed = False
        self.failure = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    # --- pymesos callbacks (called on the driver's thread) ---

    def registered(self, driver, framework_id, master_info):
        log("registered as %s with master %s:%s" % (
            framework_id.value, master_info.hostname, master_info.port))

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                self.offers += 1
                tasks = self.tasks_for(offer)
                if tasks:
                    driver.launchTasks(offer.id, tasks, filters=dict(refuse_seconds=0.0))
                else:
                    driver.declineOffer(offer.id, filters=dict(refuse_seconds=3600.0))
            if self.launched == self.total and not self.suppressed:
                # Everything is out: no more offers are wanted.
                driver.suppressOffers()
                self.suppressed = True

    def statusUpdate(self, driver, update):
        with self.lock:
            task, state = update.task_id.value, update.state
            self.updates += 1
            if (task, state) in self.seen:
                self.repeated += 1
            else:
                self.seen.add((task, state))
                self.states[state] += 1
                self.last_state[task] = state
            if state in TERMINAL and state != "TASK_FINISHED":
                self.fail("task %s ended %s: %s (%s)" % (
                    task, state, update.get("message", ""), update.get("reason", "")))
            self.check_done()

    def frameworkMessage(self, driver, executor_id, agent_id, data):
        text = decode_data(data).decode()
        with self.lock:
            verb, _, task = text.partition(" ")
            if executor_id.value != EXECUTOR_ID:
                self.fail("message from unknown executor %s: %r" % (executor_id.value, text))
            elif verb == "ready":
                self.ready.add(task)
                answer = encode_data(("finish " + task).encode())
                driver.sendFrameworkMessage(executor_id, agent_id, answer)
            elif verb == "finished":
                self.answered.add(task)
            else:
                self.fail("unexpected message %r" % text)
            self.check_done()

    def offerRescinded(self, driver, offer_id):
        log("offer %s rescinded" % offer_id.value)

    def executorLost(self, driver, executor_id, agent_id, status):
        with self.lock:
            if not self.done.is_set():
                self.fail("executor %s lost (status %s)" % (executor_id.value, status))

    def slaveLost(self, driver, agent_id):
        with self.lock:
            self.fail("agent %s lost" % agent_id.value)

    def error(self, driver, message):
        with self.lock:
            self.fail("error from the master: %s" % message)

    # --- bookkeeping (called with self.lock held) ---

    def tasks_for(self, offer):
        cpus, mem = scalar(offer, "cpus"), scalar(offer, "mem")
        executor = None
        if self.mode == "executor" and not self.executor_started:
            # The executor's own resources come out of the offer that starts it.
            cpus, mem = cpus - EXECUTOR_CPUS, mem - EXECUTOR_MEM
        # Rounded as the master's fixed-point arithmetic would, so 0.3/0.1 counts 3.
        fit = int(min((cpus + 1e-9) / CPUS, (mem + 1e-9) / MEM)) if cpus > 0 and mem > 0 else 0
        n = max(0, min(self.total - self.launched, fit))
        if self.mode == "executor":
            if n == 0:
                return []
            # One executor runs every task, so all of them go to the first agent that fits.
            if self.executor_started and offer.agent_id.value != self.agent_id:
                return []
            self.executor_started = True
            self.agent_id = offer.agent_id.value
            executor = dict(
                type="CUSTOM",
                executor_id=dict(value=EXECUTOR_ID),
                name="pymesos test executor",
                command=dict(value="exec %s %s" % (sys.executable, EXECUTOR_SCRIPT)),
                resources=resources(EXECUTOR_CPUS, EXECUTOR_MEM),
            )
        tasks = []
        for _ in range(n):
            task_id = "task-%d" % self.launched
            self.launched += 1
            task = dict(
                name=task_id,
                task_id=dict(value=task_id),
                agent_id=dict(value=offer.agent_id.value),
                resources=resources(CPUS, MEM),
            )
            if executor:
                task["executor"] = executor
            else:
                task["command"] = dict(value="echo hello")
            tasks.append(task)
        return tasks

    def fail(self, why):
        if self.failure is None:
            self.failure = why
        self.done.set()

    def check_done(self):
        finished = self.states["TASK_FINISHED"]
        if finished < self.total:
            return
        if self.mode == "executor" and len(self.answered) < self.total:
            return
        self.done.set()

    def summary(self, elapsed):
        line = "%s: %d of %d tasks finished in %.1fs; %d updates (%d repeated), %d offers" % (
            self.mode, self.states["TASK_FINISHED"], self.total, elapsed, self.updates,
            self.repeated, self.offers)
        if self.mode == "executor":
            line += "; messages: %d ready, %d answered" % (len(self.ready), len(self.answered))
        return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--master", required=True, help="the master's HOST:PORT")
    parser.add_argument("--mode", choices=["command", "executor"], default="command")
    parser.add_argument("--tasks", type=int, default=100, help="how many tasks (default 100)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds before giving up (default 600)")
    args = parser.parse_args()
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")

    framework = Framework(args.mode, args.tasks)
    info = dict(
        user=pwd.getpwuid(os.getuid()).pw_name,
        name="pymesos-%s" % args.mode,
        hostname="127.0.0.1",
        # No failover: when the framework goes, its tasks and executor go too.
        failover_timeout=0.0,
    )
    driver = MesosSchedulerDriver(framework, info, args.master, use_addict=True)

    start = time.monotonic()
    deadline = start + args.timeout
    ended = False
    driver.start()
    try:
        # pymesos reports its thread's failure by interrupting this thread, which Python
        # does only between waits: hence short ones.
        while not ended and time.monotonic() < deadline:
            ended = framework.done.wait(0.2)
    except BaseException as e:
        with framework.lock:
            framework.fail("driver failed: %r" % (e,))
        ended = True
    elapsed = time.monotonic() - start
    # stop() without failover tears the framework down, which also ends the executor.
    driver.stop()
    driver.join()

    with framework.lock:
        print(framework.summary(elapsed), flush=True)
        if framework.failure:
            print("FAILED: " + framework.failure, flush=True)
            return 1
        if not ended:
            print("FAILED: timed out after %.0fs; last states: %s" % (
                args.timeout, dict(collections.Counter(framework.last_state.values()))),
                flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
