#!/usr/bin/env python3
"""A custom executor on the v1 executor API, standard library only.

Each task it is given runs until the framework sends it a message: the executor
answers "echo: <message>" and finishes the task. It tells the framework "ready <task>"
when a task starts, reports TASK_KILLED on KILL and exits on SHUTDOWN. A task group
(LAUNCH_GROUP) starts the same way, and the framework is told "group <task> <task>..."
once for the whole group.
"""

import base64
import http.client
import json
import os
import sys
import time
import uuid


def call(body):
    host, port = os.environ["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/api/v1/executor", json.dumps(body),
                 {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    if resp.status != 202:
        sys.exit(f"call {body['type']} answered {resp.status}: {text}")


def records(stream):
    while True:
        line = stream.readline()
        if not line:
            return
        n = int(line)
        yield json.loads(stream.read(n))


def main():
    framework_id = {"value": os.environ["MESOS_FRAMEWORK_ID"]}
    executor_id = {"value": os.environ["MESOS_EXECUTOR_ID"]}
    ids = {"framework_id": framework_id, "executor_id": executor_id}

    def update(task_id, state, message=None):
        status = {"task_id": task_id, "state": state, "source": "SOURCE_EXECUTOR",
                  "timestamp": time.time(),
                  "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}
        if message:
            status["message"] = message
        call(dict(ids, type="UPDATE", update={"status": status}))

    def message(text):
        call(dict(ids, type="MESSAGE", message={"data": base64.b64encode(text.encode()).decode()}))

    host, port = os.environ["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("POST", "/api/v1/executor",
                 json.dumps(dict(ids, type="SUBSCRIBE",
                                 subscribe={"unacknowledged_tasks": [], "unacknowledged_updates": []})),
                 {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"SUBSCRIBE answered {resp.status}: {resp.read().decode()}")
    running = []
    for event in records(resp):
        kind = event["type"]
        if kind == "SUBSCRIBED":
            assert event["subscribed"]["executor_info"]["executor_id"] == executor_id
        elif kind == "LAUNCH":
            task_id = event["launch"]["task"]["task_id"]
            running.append(task_id)
            update(task_id, "TASK_RUNNING")
            message("ready " + task_id["value"])
        elif kind == "LAUNCH_GROUP":
            tasks = event["launch_group"]["task_group"]["tasks"]
            for task in tasks:
                running.append(task["task_id"])
                update(task["task_id"], "TASK_RUNNING")
            message("group " + " ".join(t["task_id"]["value"] for t in tasks))
        elif kind == "MESSAGE":
            text = base64.b64decode(event["message"]["data"]).decode()
            message("echo: " + text)
            if running:
                update(running.pop(0), "TASK_FINISHED", "answered " + text)
        elif kind == "KILL":
            task_id = event["kill"]["task_id"]
            if task_id in running:
                running.remove(task_id)
            update(task_id, "TASK_KILLED", "killed on request")
        elif kind == "SHUTDOWN":
            return


if __name__ == "__main__":
    main()
