//! systemd's Manager interface: transient scopes, and stopping, killing and querying
//! units. Operations that queue a job wait for systemd's `JobRemoved` signal for it, so
//! they return once the work is done.

use std::time::Instant;

use crate::conn::{reply_object_path, Connection};
use crate::error::Error;
use crate::wire::{Message, Value};

const DESTINATION: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const ALREADY_SUBSCRIBED: &str = "org.freedesktop.systemd1.AlreadySubscribed";
const JOB_REMOVED_MATCH: &str = "type='signal',sender='org.freedesktop.systemd1',\
     interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";

/// A transient scope unit: existing processes that systemd adopts into a unit of their
/// own (as `systemd-run --scope` does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The unit name; must end in `.scope`.
    pub name: String,
    /// The slice to place the scope in; empty means systemd's default.
    pub slice: String,
    /// Human-readable description (`systemctl status` shows it); empty leaves the default.
    pub description: String,
    /// The processes to move into the scope; at least one, and they must exist.
    pub pids: Vec<u32>,
    /// Delegate=yes: the scope's cgroup subtree is handed to us, with every controller
    /// systemd can enable.
    pub delegate: bool,
    /// Resource-control properties of the scope's own cgroup (`CPUWeight`, `IOWeight`,
    /// `MemoryLow`, all `t`), which systemd owns and keeps across reloads.
    pub resources: Vec<(String, u64)>,
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn property(name: &str, value: Value) -> Value {
    Value::Struct(vec![s(name), Value::Variant(Box::new(value))])
}

fn manager_call(member: &str, body: Vec<Value>) -> Message {
    Message::method_call(DESTINATION, OBJECT, MANAGER, member, body)
}

/// Whether `msg` is systemd's announcement that job `job` finished.
fn is_job_removed(msg: &Message, job: &str) -> bool {
    msg.interface.as_deref() == Some(MANAGER)
        && msg.member.as_deref() == Some("JobRemoved")
        && msg.path.as_deref() == Some(OBJECT)
        && matches!(msg.body.get(1), Some(Value::ObjectPath(p)) if p == job)
}

impl Connection {
    /// systemd's version string, e.g. "252.22-1~deb12u1".
    pub fn version(&mut self) -> Result<String, Error> {
        let reply = self.call(Message::method_call(
            DESTINATION,
            OBJECT,
            PROPERTIES,
            "Get",
            vec![s(MANAGER), s("Version")],
        ))?;
        match reply.body.first() {
            Some(Value::Variant(v)) => match v.as_ref() {
                Value::Str(version) => Ok(version.clone()),
                other => Err(Error::Protocol(format!(
                    "systemd's Version property has signature '{}', expected 's'",
                    other.signature()
                ))),
            },
            _ => Err(Error::Protocol(format!(
                "reply to Properties.Get has signature '{}', expected 'v'",
                reply.signature()
            ))),
        }
    }

    /// Creates and starts the transient scope `scope` and waits until systemd has moved
    /// its processes in. The scope is collected once it stops, even if it failed, so
    /// the name can be reused.
    pub fn start_scope(&mut self, scope: &Scope) -> Result<(), Error> {
        self.subscribe()?;
        let mut props = Vec::new();
        if !scope.description.is_empty() {
            props.push(property("Description", s(&scope.description)));
        }
        if !scope.slice.is_empty() {
            props.push(property("Slice", s(&scope.slice)));
        }
        props.push(property("Delegate", Value::Bool(scope.delegate)));
        props.push(property(
            "PIDs",
            Value::Array {
                elem_sig: "u".to_owned(),
                items: scope.pids.iter().map(|&p| Value::U32(p)).collect(),
            },
        ));
        props.push(property("CollectMode", s("inactive-or-failed")));
        for (name, value) in &scope.resources {
            props.push(property(name, Value::U64(*value)));
        }
        let reply = self.call(manager_call(
            "StartTransientUnit",
            vec![
                s(&scope.name),
                // Fail rather than replace if conflicting jobs are queued.
                s("fail"),
                Value::Array {
                    elem_sig: "(sv)".to_owned(),
                    items: props,
                },
                Value::Array {
                    elem_sig: "(sa(sv))".to_owned(),
                    items: Vec::new(),
                },
            ],
        ))?;
        let job = reply_object_path(&reply, "StartTransientUnit")?;
        self.wait_for_job(&job, &scope.name)
    }

    /// Changes resource-control properties (`t` values such as `CPUWeight`) of the
    /// running unit `name`, until it stops (runtime only).
    pub fn set_unit_properties(
        &mut self,
        name: &str,
        values: &[(String, u64)],
    ) -> Result<(), Error> {
        let props = values
            .iter()
            .map(|(n, v)| property(n, Value::U64(*v)))
            .collect();
        self.call(manager_call(
            "SetUnitProperties",
            vec![
                s(name),
                Value::Bool(true),
                Value::Array {
                    elem_sig: "(sv)".to_owned(),
                    items: props,
                },
            ],
        ))?;
        Ok(())
    }

    /// Stops unit `name` (job mode "replace") and waits for the stop job to finish. A
    /// unit systemd does not know is already stopped.
    pub fn stop_unit(&mut self, name: &str) -> Result<(), Error> {
        self.subscribe()?;
        match self.call(manager_call("StopUnit", vec![s(name), s("replace")])) {
            Ok(reply) => {
                let job = reply_object_path(&reply, "StopUnit")?;
                self.wait_for_job(&job, name)
            }
            Err(e) if e.is_no_such_unit() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends `signal` to every process of unit `name`. A unit systemd does not know has
    /// no processes to signal.
    pub fn kill_unit(&mut self, name: &str, signal: i32) -> Result<(), Error> {
        match self.call(manager_call(
            "KillUnit",
            vec![s(name), s("all"), Value::I32(signal)],
        )) {
            Ok(_) => Ok(()),
            Err(e) if e.is_no_such_unit() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether systemd currently has unit `name` loaded.
    pub fn unit_loaded(&mut self, name: &str) -> Result<bool, Error> {
        match self.call(manager_call("GetUnit", vec![s(name)])) {
            Ok(_) => Ok(true),
            Err(e) if e.is_no_such_unit() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Clears unit `name`'s failed state so that it can be collected or its name reused.
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<(), Error> {
        match self.call(manager_call("ResetFailedUnit", vec![s(name)])) {
            Ok(_) => Ok(()),
            Err(e) if e.is_no_such_unit() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes sure `JobRemoved` reaches this connection. On the private socket systemd
    /// sends every Manager signal to every connection unasked; on the bus it emits them
    /// only while some client is subscribed, and the daemon routes broadcast signals
    /// only to connections with a matching rule.
    fn subscribe(&mut self) -> Result<(), Error> {
        if !self.is_bus() || self.subscribed {
            return Ok(());
        }
        self.call(Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            vec![s(JOB_REMOVED_MATCH)],
        ))?;
        match self.call(manager_call("Subscribe", Vec::new())) {
            Ok(_) => {}
            Err(Error::DBus { name, .. }) if name == ALREADY_SUBSCRIBED => {}
            Err(e) => return Err(e),
        }
        self.subscribed = true;
        Ok(())
    }

    /// Waits for the `JobRemoved` signal of `job` (which may already be queued: systemd
    /// can finish a job before its reply to the call is read) and maps its result.
    fn wait_for_job(&mut self, job: &str, unit: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout();
        let what = format!(
            "waiting {:?} for systemd's job {job} for {unit} to finish",
            self.timeout()
        );
        let signal = self.wait_for_signal(deadline, &what, |m| is_job_removed(m, job))?;
        match signal.body.get(3).and_then(Value::as_str) {
            Some("done") => Ok(()),
            Some(result) => Err(Error::JobFailed {
                unit: unit.to_owned(),
                result: result.to_owned(),
            }),
            None => Err(Error::Protocol(format!(
                "JobRemoved signal for {job} has signature '{}', expected 'uoss'",
                signal.signature()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::test_peer::{read_msg, reply, with_peer};
    use crate::wire::MessageType;

    fn send(s: &mut UnixStream, msgs: &[Message], first_serial: u32) {
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            out.extend(m.encode(first_serial + u32::try_from(i).expect("few")));
        }
        s.write_all(&out).expect("write");
    }

    fn prop<'a>(props: &'a Value, name: &str) -> Option<&'a Value> {
        let Value::Array { items, .. } = props else {
            return None;
        };
        items.iter().find_map(|p| match p {
            Value::Struct(f) if f.first().and_then(Value::as_str) == Some(name) => match f.get(1) {
                Some(Value::Variant(v)) => Some(v.as_ref()),
                _ => None,
            },
            _ => None,
        })
    }

    /// systemd on the private socket: no Hello or Subscribe; JobRemoved may come before
    /// the reply that names the job.
    #[test]
    fn jobs_are_awaited_on_a_direct_connection() {
        let (_dir, path, peer) = with_peer(|mut sock| {
            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("StartTransientUnit"));
            assert_eq!(call.signature(), "ssa(sv)a(sa(sv))");
            assert_eq!(call.body[0], s("holdfast-a.scope"));
            assert_eq!(call.body[1], s("fail"));
            assert_eq!(
                prop(&call.body[2], "Slice"),
                Some(&s("holdfast_containers.slice"))
            );
            assert_eq!(prop(&call.body[2], "Delegate"), Some(&Value::Bool(true)));
            assert_eq!(
                prop(&call.body[2], "CollectMode"),
                Some(&s("inactive-or-failed"))
            );
            assert_eq!(
                prop(&call.body[2], "Description"),
                None,
                "empty is left out"
            );
            assert_eq!(
                prop(&call.body[2], "PIDs"),
                Some(&Value::Array {
                    elem_sig: "u".to_owned(),
                    items: vec![Value::U32(42)]
                })
            );
            let job = "/org/freedesktop/systemd1/job/5";
            send(
                &mut sock,
                &[
                    job_removed("/org/freedesktop/systemd1/job/4", "failed"),
                    job_removed(job, "done"),
                    reply(
                        &call,
                        MessageType::MethodReturn,
                        None,
                        vec![Value::ObjectPath(job.to_owned())],
                    ),
                ],
                10,
            );

            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("StopUnit"));
            assert_eq!(call.body, vec![s("holdfast-a.scope"), s("replace")]);
            let job = "/org/freedesktop/systemd1/job/6";
            send(
                &mut sock,
                &[
                    reply(
                        &call,
                        MessageType::MethodReturn,
                        None,
                        vec![Value::ObjectPath(job.to_owned())],
                    ),
                    job_removed(job, "timeout"),
                ],
                20,
            );

            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("KillUnit"));
            assert_eq!(call.body, vec![s("gone.scope"), s("all"), Value::I32(9)]);
            send(
                &mut sock,
                &[reply(
                    &call,
                    MessageType::Error,
                    Some("org.freedesktop.systemd1.NoSuchUnit"),
                    vec![s("Unit gone.scope not loaded.")],
                )],
                30,
            );
        });
        let mut conn = Connection::connect(&path, false).expect("connect");
        conn.start_scope(&Scope {
            name: "holdfast-a.scope".to_owned(),
            slice: "holdfast_containers.slice".to_owned(),
            description: String::new(),
            pids: vec![42],
            delegate: true,
            resources: Vec::new(),
        })
        .expect("start_scope");
        let err = conn
            .stop_unit("holdfast-a.scope")
            .expect_err("job timed out");
        assert!(
            matches!(&err, Error::JobFailed { unit, result } if unit == "holdfast-a.scope" && result == "timeout"),
            "{err:?}"
        );
        conn.kill_unit("gone.scope", 9)
            .expect("no such unit is fine");
        peer.join().expect("peer");
        // The unrelated JobRemoved stays queued for whoever wants signals.
        let sig = conn.next_signal(Instant::now()).expect("queued signal");
        assert_eq!(
            sig.body.get(1),
            Some(&Value::ObjectPath(
                "/org/freedesktop/systemd1/job/4".to_owned()
            ))
        );
    }

    /// Through the bus daemon: Hello, then AddMatch and Subscribe once before the first
    /// job.
    #[test]
    fn bus_connections_subscribe_once() {
        let (_dir, path, peer) = with_peer(|mut sock| {
            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("Hello"));
            send(
                &mut sock,
                &[reply(
                    &call,
                    MessageType::MethodReturn,
                    None,
                    vec![s(":1.7")],
                )],
                1,
            );
            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("AddMatch"));
            assert_eq!(call.destination.as_deref(), Some("org.freedesktop.DBus"));
            assert_eq!(call.body, vec![s(JOB_REMOVED_MATCH)]);
            send(
                &mut sock,
                &[reply(&call, MessageType::MethodReturn, None, vec![])],
                2,
            );
            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("Subscribe"));
            send(
                &mut sock,
                &[reply(&call, MessageType::MethodReturn, None, vec![])],
                3,
            );
            for serial in [10, 20] {
                let call = read_msg(&mut sock);
                assert_eq!(call.member.as_deref(), Some("StopUnit"));
                let job = format!("/org/freedesktop/systemd1/job/{serial}");
                send(
                    &mut sock,
                    &[
                        reply(
                            &call,
                            MessageType::MethodReturn,
                            None,
                            vec![Value::ObjectPath(job.clone())],
                        ),
                        job_removed(&job, "done"),
                    ],
                    serial,
                );
            }
            let call = read_msg(&mut sock);
            assert_eq!(call.member.as_deref(), Some("GetUnit"));
            send(
                &mut sock,
                &[reply(
                    &call,
                    MessageType::MethodReturn,
                    None,
                    vec![Value::ObjectPath(
                        "/org/freedesktop/systemd1/unit/a_2escope".to_owned(),
                    )],
                )],
                30,
            );
        });
        let mut conn = Connection::connect(&path, true).expect("connect");
        conn.stop_unit("a.scope").expect("first stop");
        conn.stop_unit("a.scope").expect("second stop");
        assert!(conn.unit_loaded("a.scope").expect("GetUnit"));
        peer.join().expect("peer");
    }

    fn job_removed(job: &str, result: &str) -> Message {
        let mut m = manager_call(
            "JobRemoved",
            vec![
                Value::U32(7),
                Value::ObjectPath(job.to_owned()),
                s("x.scope"),
                s(result),
            ],
        );
        m.msg_type = MessageType::Signal;
        m.destination = None;
        m
    }

    #[test]
    fn job_removed_matches_only_its_job() {
        let m = job_removed("/org/freedesktop/systemd1/job/7", "done");
        assert_eq!(m.signature(), "uoss");
        assert!(is_job_removed(&m, "/org/freedesktop/systemd1/job/7"));
        assert!(!is_job_removed(&m, "/org/freedesktop/systemd1/job/70"));
        let mut other = m.clone();
        other.member = Some("JobNew".to_owned());
        assert!(!is_job_removed(&other, "/org/freedesktop/systemd1/job/7"));
    }

    #[test]
    fn start_transient_unit_call_is_well_formed() {
        let props = vec![
            property("Description", s("d")),
            property(
                "PIDs",
                Value::Array {
                    elem_sig: "u".to_owned(),
                    items: vec![Value::U32(1)],
                },
            ),
        ];
        let m = manager_call(
            "StartTransientUnit",
            vec![
                s("a.scope"),
                s("fail"),
                Value::Array {
                    elem_sig: "(sv)".to_owned(),
                    items: props,
                },
                Value::Array {
                    elem_sig: "(sa(sv))".to_owned(),
                    items: vec![],
                },
            ],
        );
        assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
        m.validate().expect("valid");
    }
}
