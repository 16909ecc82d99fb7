"""A custom executor built on pymesos (its MesosExecutorDriver), for framework.py's
executor mode.

The agent starts it from ExecutorInfo.command with Mesos's MESOS_* environment; pymesos
reads that environment and subscribes on the agent's /api/v1/executor. Each task it is
given goes TASK_RUNNING and the executor tells the framework "ready <task>". When the
framework answers "finish <task>", it says "finished <task>" and reports the task
TASK_FINISHED. KILL reports TASK_KILLED; SHUTDOWN (or a lost agent) ends it.
"""

import sys
import threading

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


def log(text):
    # stderr ends up in the sandbox, where the test reads it.
    print("executor: " + text, file=sys.stderr, flush=True)


class MessageExecutor(Executor):
    def __init__(self):
        self.running = set()
        self.lock = threading.Lock()

    def registered(self, driver, executor_info, framework_info, agent_info):
        log("registered: executor %s of framework %s on agent %s (%s)" % (
            executor_info.executor_id.value, framework_info.id.value,
            agent_info.id.value, agent_info.hostname))

    def launchTask(self, driver, task):
        task_id = task.task_id.value
        with self.lock:
            self.running.add(task_id)
        driver.sendStatusUpdate(dict(task_id=task.task_id, state="TASK_RUNNING"))
        driver.sendFrameworkMessage(encode_data(("ready " + task_id).encode()))

    def frameworkMessage(self, driver, message):
        text = decode_data(message).decode()
        verb, _, task_id = text.partition(" ")
        with self.lock:
            known = verb == "finish" and task_id in self.running
            self.running.discard(task_id)
        if not known:
            driver.sendFrameworkMessage(encode_data(("unexpected " + text).encode()))
            return
        driver.sendFrameworkMessage(encode_data(("finished " + task_id).encode()))
        driver.sendStatusUpdate(dict(task_id=dict(value=task_id), state="TASK_FINISHED",
                                     message="finished on request"))

    def killTask(self, driver, task_id):
        with self.lock:
            self.running.discard(task_id.value)
        driver.sendStatusUpdate(dict(task_id=task_id, state="TASK_KILLED",
                                     message="killed on request"))

    def shutdown(self, driver):
        log("shutting down with %d tasks running" % len(self.running))

    def error(self, driver, message):
        log("error from the agent: %s" % message)


def main():
    # pymesos's default of 10 s per call is short for a slow (emulated) machine.
    driver = MesosExecutorDriver(MessageExecutor(), use_addict=True, http_timeout=120)
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
