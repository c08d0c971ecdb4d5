"""A worker's unacknowledged reports survive the worker: a job that ended while the master was
away is reported by the worker's next life, and never runs again."""

from __future__ import annotations

import os

from support import wait_until
from support.cluster import Ledger, job, run_spec
from titan_actors.actors.worker_reports import ReportBook
from titan_actors.scheduler import JobState
from titan_actors.wire.messages.worker import AttemptRef, AttemptResult


def test_report_book_round_trips_and_sets_a_damaged_file_aside(tmp_path):
    book = ReportBook(tmp_path)
    results = [AttemptResult(AttemptRef("r1", f"j{n}", 1, n), n, "", 1.0, 10 * n)
               for n in range(3)]
    book.save(results)
    assert list(ReportBook(tmp_path).load().values()) == results
    book.path.write_bytes(book.path.read_bytes()[:-3])  # a torn last report
    assert list(ReportBook(tmp_path).load().values()) == results[:2]
    assert book.path.with_suffix(".bad").exists() and not book.path.exists()
    assert ReportBook(tmp_path).load() == {}


def test_report_book_journal_appends_each_change_and_compacts(tmp_path):
    book = ReportBook(tmp_path)
    book.save([])
    results = [AttemptResult(AttemptRef("r1", f"j{n}", 1, n), 0, "", 1.0, n) for n in range(600)]
    for result in results[:3]:
        book.add(result)
    size = book.path.stat().st_size
    book.remove(results[1].ref)
    book.remove(results[1].ref)  # twice: one entry
    assert book.path.stat().st_size == size + 1 + 4 + len("r1\0j1\x001\x001")
    assert list(ReportBook(tmp_path).load().values()) == [results[0], results[2]]
    for result in results[3:]:  # many more entries than live reports: rewritten compacted
        book.add(result)
        book.remove(result.ref)
    assert list(ReportBook(tmp_path).load().values()) == [results[0], results[2]]
    assert book.path.stat().st_size < 300 * (size // 3)  # not 1,200 entries


def test_report_book_reads_the_older_format(tmp_path):
    from titan_actors.wire import codec
    from titan_actors.wire.messages.worker import JobFinished
    result = AttemptResult(AttemptRef("r1", "j", 1, 2), 3, "exit code 3", 1.0, 10)
    payload = codec.encode(JobFinished(result))
    (tmp_path / "reports.bin").write_bytes(len(payload).to_bytes(4, "big") + payload)
    assert ReportBook(tmp_path).load() == {result.ref: result}


def test_a_result_the_master_never_acknowledged_is_reported_by_the_next_life(cluster):
    ledger = Ledger(cluster.root / "ledger")
    os.mkfifo(cluster.root / "go")  # the job's read blocks until the test writes it
    worker = cluster.add_worker("w1", slots=1)
    accepted = cluster.client.submit(run_spec("once", job(
        "a", f"{ledger.mark('start')}; read line < {cluster.root / 'go'}; {ledger.mark('end')}")))
    wait_until(lambda: ledger.count("start", "a") == 1, what="the job to start")
    port = cluster.stop_master()[1]
    (cluster.root / "go").write_text("go\n")  # the job ends while the master is away
    book = ReportBook(worker.options.data_dir)
    wait_until(lambda: book.path.exists() and book.load(), timeout=10,
               what="the unacknowledged report on disk")
    cluster.stop_worker("w1")  # its memory is gone; the file is not
    cluster.start_master(port=port)
    cluster.add_worker("w1", slots=1)
    jobs = cluster.client.wait_run(accepted.run_id, timeout=10)
    assert jobs["a"].state is JobState.COMPLETED and jobs["a"].attempt == 1
    assert ledger.count("start", "a") == 1  # not run again
