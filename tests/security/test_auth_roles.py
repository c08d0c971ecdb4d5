"""Roles against a real master with a cluster key: 0 unauthenticated operations executed.

One ``titanctl master --key-file`` process and one real worker (with the worker key). A client
sets up what an attacker would like to change: a waiting gate, a running job, a dead job, a
store key, an uploaded file. Then, over raw wire connections:

* without a key, with a wrong key, with another role's key, with a forged or altered job token,
  and with request frames sent before or instead of a handshake: every handshake is refused;
* authenticated as a worker, a client or a job, every message type the role lacks is refused
  by the master before it is decoded (an empty payload: the refusal cannot depend on it), and
  every state-changing request with a real payload too;
* a registered worker reporting on another worker's attempt, and a job acting outside its run,
  are refused.

Every attack carries a unique marker. Afterwards the master's state is what the client left
(gate waiting, job running on attempt 1, dead job dead, store and files untouched, no run,
worker, event or log line of the attacker) and no file of the data directory (AOFs, logs, the
store, uploads) holds the marker.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass

import pytest

from support.secure_master import KeyedMaster, ask_message, files_holding, raw_ask, wait_for
from titan_actors import __version__, transfer
from titan_actors.errors import (
    BrokenError,
    ClosedError,
    HandshakeError,
    PermissionDeniedError,
    UnknownMessageTypeError,
)
from titan_actors.scheduler.model import JobKind, JobSpec, JobState, RunSpec
from titan_actors.wire import auth, codec
from titan_actors.wire.auth import JobToken
from titan_actors.wire.blocking import BlockingClient
from titan_actors.wire.connection import Connection
from titan_actors.wire.messages import files as f
from titan_actors.wire.messages import lifecycle as lc
from titan_actors.wire.messages import master as m
from titan_actors.wire.messages import scaler as sc
from titan_actors.wire.messages import store as st
from titan_actors.wire.messages import worker as w
from titan_actors.wire.messages.handshake import HandshakeRejected, Hello, JobTokenClaims, Proof
from titan_actors.wire.registry import registered
from titan_actors.wire.roles import Role, role_may

MARK = f"ATTACK{secrets.token_hex(6)}"
HOLDER = "import os, signal; print('token:' + os.environ['TITAN_TOKEN'], flush=True); " \
         "signal.pause()"
COUNT = {"attempted": 0, "refused": 0}  # the figure this module reports


@dataclass
class Legit:
    master: KeyedMaster
    gate_run: str
    running_run: str
    dead_run: str
    token: str
    canary: str

    @property
    def holder(self) -> w.AttemptRef:
        claims = JobToken.parse(self.token).claims
        return w.AttemptRef(claims.run_id, claims.job_id, claims.attempt,
                            int.from_bytes(claims.nonce, "big"))


@pytest.fixture(scope="module")
def legit(tmp_path_factory):
    master = KeyedMaster(tmp_path_factory.mktemp("roles")).start()
    try:
        master.worker("w1", master.key(Role.WORKER))
        canary = str(master.root / f"{MARK}.ran")  # what an attacker's job would create
        with master.client(Role.CLIENT, "legit") as client:
            client.store_put("legit", "kept")
            transfer.upload_bytes(client, b"legit content", "legit.txt")
            gate = client.submit(RunSpec("legit-gate", (JobSpec(
                "gate", kind=JobKind.GATE, message="go?", max_wait_seconds=600),))).run_id
            dead = client.submit(RunSpec("legit-dead", (JobSpec(
                "dies", command=("false",), retries=0),))).run_id
            running = client.submit(RunSpec("legit-running", (JobSpec(
                "holder", command=(sys.executable, "-c", HOLDER)),))).run_id
            client.follow_run(dead, 30)
            log = wait_for(client, lambda: _token_in(client.logs(f"{running}/holder").data),
                           what="the holder job to print its token")
            wait_for(client, lambda: client.job(f"{gate}/gate").job.state is JobState.WAITING)
        yield Legit(master, gate, running, dead, log, canary)
    finally:
        master.stop()


def _token_in(data: bytes) -> str:
    line = next((x for x in data.decode().splitlines() if x.startswith("token:")), "")
    return line.removeprefix("token:")


def _attacks(s: Legit) -> list[object]:
    """State-changing requests with real payloads, each carrying the marker where it can."""
    ref = s.holder
    job = JobSpec(MARK, command=("touch", s.canary))
    return [
        m.SubmitRun(RunSpec(MARK, (job,))),
        m.SubmitRun(RunSpec(MARK, (job,)), from_run=s.gate_run),
        m.AddJobs(s.gate_run, (job,)),
        m.AddJobs(s.running_run, (job,)),
        m.Cancel(s.gate_run),
        m.Cancel(f"{s.running_run}/holder"),
        m.Retry(f"{s.dead_run}/dies"),
        m.Prune(0.0, 0),
        lc.DecideGate(f"{s.gate_run}/gate", True, MARK),
        lc.StopService(f"{s.running_run}/holder"),
        st.StorePut("titan:hitl:status:gate", "APPROVED"),
        st.StorePut(MARK, MARK),
        st.StoreDelete("legit"),
        st.StoreSetAdd(MARK, MARK),
        f.PutFile(f.FileArea.UPLOADS, MARK, MARK, 0, MARK.encode(), True),
        f.PutFile(f.FileArea.SCRIPTS, f"{MARK}.py", MARK, 0, MARK.encode(), True),
        f.DeleteFile(f.FileArea.UPLOADS, "legit.txt"),
        w.RegisterWorker(MARK, ("GENERAL",), 1, MARK, 1, (), ()),
        w.Heartbeat((ref,), True),
        w.JobStarted(ref, 4242),
        w.JobOutput(ref, 1, MARK.encode()),
        w.JobFinished(w.AttemptResult(ref, 0, MARK, time.time())),
        w.HandBack(ref),
        w.ServiceState(ref, JobState.READY, 1, 0, MARK),
        w.Dispatch(ref, job, "", "127.0.0.1", 1),
        w.KillAttempt(ref, MARK),
        sc.SpawnBurst(MARK, MARK),
        sc.Retire(MARK),
        st.PutRecord(MARK, MARK, 0.0),
        st.DeleteRecord("legit"),
    ]


def _may(role: Role, cls: type) -> bool:
    return role_may(role, cls.REQUIRES) if cls.REQUIRES is not None else role is Role.ADMIN


def _refused(client, role: Role, attacks: list[object], ids: list[int]) -> None:
    """Every attack the role lacks the capability for is refused, and so is every message type
    it lacks, sent with an empty payload (refused before decoding: any payload would be)."""
    for message in attacks:
        if _may(role, type(message)):
            continue
        ids[0] += 1
        answer = ask_message(client, message, ids[0])
        _count(answer)
        assert isinstance(answer, PermissionDeniedError), (role, message, answer)
    for type_id, cls in sorted(registered().items()):
        if type_id >= 60000 or _may(role, cls):
            continue
        ids[0] += 1
        answer = raw_ask(client, type_id, b"", ids[0])
        _count(answer)
        assert isinstance(answer, PermissionDeniedError), (role, cls.__name__, answer)
    ids[0] += 1
    assert isinstance(raw_ask(client, 59999, b"", ids[0]), UnknownMessageTypeError)


def _count(answer: object) -> None:
    COUNT["attempted"] += 1
    COUNT["refused"] += isinstance(answer, PermissionDeniedError)


# -- handshakes that must fail ----------------------------------------------------------------


def _raw_handshake(s: Legit, role: Role, secret: bytes | None, token: bytes = b"",
                   identity: str = MARK, then: bytes = b"") -> tuple[object, Connection]:
    """Hello, then a Proof made with ``secret`` (None: an empty proof), then ``then`` (frames
    sent right behind the Proof, before the verdict); returns the server's verdict."""
    sock = socket.create_connection((s.master.host, s.master.port), timeout=10)
    connection = Connection(sock)
    hello = Hello(role, identity, os.urandom(auth.NONCE_SIZE), token, __version__)
    connection.send(hello)
    challenge, _ = connection.recv_message()
    if isinstance(challenge, HandshakeRejected):
        return challenge, connection
    proof = b"" if secret is None else \
        auth._mac(secret, b"client", *auth._transcript(hello, challenge.nonce))
    sock.sendall(codec.encode_frame(Proof(proof)) + then)
    verdict, _ = connection.recv_message()
    return verdict, connection


def _closed_after(connection: Connection) -> bool:
    """The server closed the connection: nothing more comes back."""
    try:
        connection.recv_message()
    except (BrokenError, ClosedError):
        return True
    finally:
        connection.close()
    return False


def _attack_frames(s: Legit) -> bytes:
    return b"".join(codec.encode_frame(msg, request_id=n)
                    for n, msg in enumerate(_attacks(s), 1))


def test_no_key_a_wrong_key_or_another_roles_key_never_passes_the_handshake(legit):
    s = legit
    with pytest.raises(HandshakeError, match="requires the cluster key"):  # the client's check
        BlockingClient(s.master.host, s.master.port, role=Role.CLIENT, timeout=10).close()
    worker_secret = s.master.keyring(Role.WORKER).key_for(Role.WORKER)
    client_secret = s.master.keyring(Role.CLIENT).key_for(Role.CLIENT)
    tries = [(Role.CLIENT, None), (Role.ADMIN, os.urandom(32)),      # no key, a random key
             (Role.CLIENT, worker_secret), (Role.ADMIN, worker_secret),  # a worker's key
             (Role.WORKER, client_secret), (Role.ADMIN, client_secret),  # a client's key
             (Role.PEER, client_secret)]
    frames = _attack_frames(s)
    for role, secret in tries:  # the attack frames follow the Proof in the same write
        verdict, connection = _raw_handshake(s, role, secret, then=frames)
        COUNT["attempted"] += len(_attacks(s))
        assert isinstance(verdict, HandshakeRejected), (role, verdict)
        assert "failed to prove its key" in verdict.reason
        assert _closed_after(connection), "the server answered a frame after refusing"
        COUNT["refused"] += len(_attacks(s))

    # request frames instead of a handshake
    sock = socket.create_connection((s.master.host, s.master.port), timeout=10)
    connection = Connection(sock)
    sock.sendall(frames)
    verdict, _ = connection.recv_message()
    assert isinstance(verdict, HandshakeRejected) and "expected Hello" in verdict.reason
    assert _closed_after(connection)
    _assert_untouched(s)


def test_forged_and_altered_job_tokens_are_refused(legit):
    s = legit
    real = JobToken.parse(s.token)
    claims = real.claims
    other_run = codec.encode(JobTokenClaims(s.gate_run, "gate", claims.attempt,
                                            claims.expires_at, claims.nonce))
    longer = codec.encode(JobTokenClaims(claims.run_id, claims.job_id, claims.attempt,
                                         claims.expires_at + 10**6, claims.nonce))
    for public, secret, why in [
            (other_run, real.secret, "no longer valid"),       # another job's claims
            (longer, real.secret, "failed to prove"),          # its own, but altered
            (real.public, os.urandom(32), "failed to prove")]:  # its own, a made-up secret
        verdict, connection = _raw_handshake(s, Role.JOB, secret, token=public,
                                             then=_attack_frames(s))
        COUNT["attempted"] += len(_attacks(s))
        assert isinstance(verdict, HandshakeRejected) and why in verdict.reason, verdict
        assert _closed_after(connection)
        COUNT["refused"] += len(_attacks(s))
    expired = codec.encode(JobTokenClaims(claims.run_id, claims.job_id, claims.attempt,
                                          time.time() - 1, claims.nonce))
    verdict, connection = _raw_handshake(s, Role.JOB, real.secret, token=expired)
    assert isinstance(verdict, HandshakeRejected) and "expired" in verdict.reason
    connection.close()
    _assert_untouched(s)


# -- authenticated, but not allowed -----------------------------------------------------------


@pytest.mark.parametrize("role", [Role.WORKER, Role.CLIENT, Role.PEER], ids=lambda r: r.name)
def test_each_role_key_is_refused_every_request_outside_its_role(legit, role):
    s = legit
    with s.master.wire(role, identity=MARK) as client:
        _refused(client, role, _attacks(s), [0])
    _assert_untouched(s)


def test_a_worker_cannot_report_on_another_workers_attempt(legit):
    s = legit
    ref = s.holder
    with s.master.wire(Role.WORKER, identity="intruder") as intruder:
        registered_as = ask_message(intruder, w.RegisterWorker(
            "intruder", ("NOTHING-ROUTES-HERE",), 1, "elsewhere", 1, (), ()), 1)
        assert isinstance(registered_as, w.Registered)
        impostor = ask_message(intruder, w.RegisterWorker(
            "w1", ("GENERAL",), 1, "elsewhere", 1, (), ()), 2)
        assert isinstance(impostor, Exception) and "cannot register as 'w1'" in str(impostor)
        forged = [w.JobStarted(ref, 4242), w.JobOutput(ref, 1, MARK.encode()),
                  w.ServiceState(ref, JobState.READY, 1, 0, MARK), w.Heartbeat((ref,), True),
                  w.JobFinished(w.AttemptResult(ref, 0, MARK, time.time())), w.HandBack(ref)]
        for n, message in enumerate(forged, 3):
            COUNT["attempted"] += 1
            answer = ask_message(intruder, message, n)
            assert not isinstance(answer, Exception), (message, answer)  # dropped quietly
            COUNT["refused"] += 1
    _assert_untouched(s)
    assert f"refused a report of {ref.run_id}/holder from intruder" in s.master.log()


def test_a_worker_cannot_write_outside_the_logs_through_a_made_up_run_id(legit, tmp_path):
    """Output, a start or a result of a job the master does not know is refused: its ids must
    never become a path (a ``../`` run id once made the master append to any ``.log`` file)."""
    s = legit
    target = tmp_path / "outside"
    escape = "../" * 12 + str(target).lstrip("/")
    with s.master.wire(Role.WORKER, identity="intruder") as intruder:
        assert isinstance(ask_message(intruder, w.RegisterWorker(
            "intruder", ("NOTHING-ROUTES-HERE",), 1, "elsewhere", 1, (), ()), 1), w.Registered)
        for n, ref in enumerate([w.AttemptRef(escape, "planted", 1, 1),
                                 w.AttemptRef("r-none", "planted", 1, 1)], 2):
            for k, message in enumerate([w.JobStarted(ref, 1), w.JobOutput(ref, 1, b"x"),
                                         w.JobFinished(w.AttemptResult(ref, 0, MARK, 1.0))]):
                answer = ask_message(intruder, message, n * 10 + k)
                assert not isinstance(answer, Exception), (message, answer)
    assert not target.exists() and not (target / "planted.log").exists()
    _assert_untouched(s)


def test_a_job_token_acts_only_inside_its_own_run(legit):
    s = legit
    job = JobSpec(MARK, command=("touch", s.canary))
    outside = [
        m.AddJobs(s.gate_run, (job,)), m.Cancel(s.gate_run), m.Cancel(f"{s.gate_run}/gate"),
        m.Retry(f"{s.dead_run}/dies"), m.SubmitRun(RunSpec(MARK, (job,)), from_run=s.gate_run),
        m.GetRun(s.gate_run), m.GetJob(f"{s.gate_run}/gate"), m.GetLogs(f"{s.dead_run}/dies"),
        m.GetRunSpec(s.gate_run), m.WaitEvents(0, 0.0, s.gate_run), f.ListWorkspace(s.gate_run),
        lc.StopService(f"{s.gate_run}/gate"), lc.DecideGate(f"{s.gate_run}/gate", True, MARK),
        st.StorePut("titan:hitl:status:gate", "APPROVED"),
        f.PutFile(f.FileArea.SCRIPTS, f"{MARK}.py", MARK, 0, MARK.encode(), True),
        f.DeleteFile(f.FileArea.UPLOADS, "legit.txt"),
    ]
    with s.master.wire(Role.JOB, token=JobToken.parse(s.token)) as job_client:
        for n, message in enumerate(outside, 1):
            answer = ask_message(job_client, message, n)
            _count(answer)
            assert isinstance(answer, PermissionDeniedError), (message, answer)
        _refused(job_client, Role.JOB, _attacks(s), [100])
        runs = ask_message(job_client, m.ListRuns(1000, ""), 1000)
        assert [r.run_id for r in runs.runs] == [s.running_run]  # it sees its own run only
        assert ask_message(job_client, lc.ListGates(True), 1001).jobs == ()
    _assert_untouched(s)


def test_a_finished_jobs_token_is_refused(legit):
    s = legit
    with s.master.client(Role.CLIENT, "legit") as client:
        run = client.submit(RunSpec("legit-short", (JobSpec("short", command=(
            sys.executable, "-c", "import os; print('token:' + os.environ['TITAN_TOKEN'])")),)))
        client.follow_run(run.run_id, 30)
        token = _token_in(client.logs(f"{run.run_id}/short").data)
    with pytest.raises(HandshakeError, match="no longer valid"):
        s.master.wire(Role.JOB, token=JobToken.parse(token)).close()
    _assert_untouched(s)


def test_no_attack_left_a_trace(legit, record_property):
    """The module's figure: every attempted operation was refused, none executed."""
    s = legit
    _assert_untouched(s)
    assert COUNT["refused"] == COUNT["attempted"], COUNT
    record_property("unauthenticated_operations", COUNT)
    print(f"\n{COUNT['attempted']} operations attempted without the right to, "
          f"{COUNT['refused']} refused, 0 executed")


def _assert_untouched(s: Legit) -> None:
    """What the client set up is as it was, and nothing of an attacker was kept."""
    with s.master.client(Role.ADMIN, "auditor") as admin:
        runs = admin.runs(1000)
        assert not [r.name for r in runs if MARK in r.name]
        assert {r.run_id for r in runs} >= {s.gate_run, s.running_run, s.dead_run}
        gate = admin.job(f"{s.gate_run}/gate").job
        assert (gate.state, gate.decided_by, gate.comment) == (JobState.WAITING, "", "")
        holder = admin.job(f"{s.running_run}/holder").job
        assert (holder.state, holder.attempt) == (JobState.RUNNING, 1)
        assert [j.job_id for j in admin.run(s.running_run).jobs] == ["holder"]
        assert [j.job_id for j in admin.run(s.gate_run).jobs] == ["gate"]
        dies = admin.job(f"{s.dead_run}/dies").job
        assert (dies.state, dies.attempt) == (JobState.DEAD, 1)
        assert MARK.encode() not in admin.logs(f"{s.running_run}/holder").data
        assert admin.store_get("legit") == "kept"
        assert admin.store_get("titan:hitl:status:gate") is None
        assert not [k for k in admin.store_keys("") if MARK in k]
        assert [i.name for i in transfer.list_files(admin)] == ["legit.txt"]
        assert transfer.list_files(admin, f.FileArea.SCRIPTS) == ()
        assert {x.name for x in admin.workers()} <= {"w1", "intruder"}
        events = admin.wait_events(0, 0.0).events
        assert not [e for e in events if MARK in e.detail or MARK in e.run_id
                    or "4242" in e.detail]
    assert not os.path.exists(s.canary)
    assert files_holding(s.master.data, MARK.encode()) == []
