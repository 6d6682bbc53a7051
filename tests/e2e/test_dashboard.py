"""The dashboard's job views in headless Chromium against the live API and runtime: the jobs
table (filters, cursor pages, live updates), a job followed live to ``completed`` on its page,
cancel and retry, and the submit form (a DOI, and a PDF upload with the size cap shown)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from ingest_ray.samples import SAMPLES, write_samples
from ingest_ray.states import JobStatus
from tests.e2e.conftest import Ui, sync_api

expect = sync_api.expect
STEP_S = 1.0  # each scripted stage of the followed job takes this long, so it is seen live


def _rows(page: object) -> object:
    return page.get_by_test_id("job-row")  # type: ignore[attr-defined]


def test_dashboard_jobs_filter_page_and_update_live(ui: Ui, page: object) -> None:
    word = uuid.uuid4().hex[:6]
    ids = [ui.submit(f"bulk {n} {word}", title=f"Ledger notes {n} ({word})") for n in range(24)]
    other = ui.submit(f"other {word}", title="Unrelated paper")
    for job_id in [*ids, other]:
        ui.live.wait_status(job_id, JobStatus.COMPLETED)
    rows = _rows(page)
    scheduling = page.get_by_test_id("tenant-scheduling")  # type: ignore[attr-defined]
    expect(scheduling).to_contain_text(f"tenant {ui.tenant} · weight 1")  # GET /tenants
    expect(scheduling).to_contain_text("share 100% of dispatches", timeout=15_000)  # the only one
    newest = page.locator(f'[data-testid="job-row"][data-job-id="{other}"]')  # type: ignore[attr-defined]
    expect(newest).to_be_visible()  # a refresh that saw every job (paging follows what is shown)
    expect(rows).to_have_count(20)  # the newest page
    expect(page.get_by_test_id("page-info")).to_have_text("page 1")
    page.get_by_test_id("page-older").click()  # type: ignore[attr-defined]
    expect(page.get_by_test_id("page-info")).to_have_text("page 2")
    expect(rows).to_have_count(5)
    page.get_by_test_id("page-newer").click()  # type: ignore[attr-defined]
    expect(rows).to_have_count(20)

    page.get_by_test_id("filter-q").fill(f"({word})")  # type: ignore[attr-defined]
    expect(rows).to_have_count(20)
    expect(page.locator(f'[data-testid="job-row"][data-job-id="{other}"]')).to_have_count(0)  # type: ignore[attr-defined]
    expect(rows.first.get_by_test_id("job-link")).to_have_text(re.compile(f"Ledger notes .*{word}"))  # type: ignore[attr-defined]
    page.get_by_test_id("filter-q").fill("unrelated")  # type: ignore[attr-defined]
    expect(rows).to_have_count(1)
    page.get_by_test_id("filter-q").fill("")  # type: ignore[attr-defined]
    page.get_by_test_id("filter-status").select_option("processing")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()
    slow = ui.submit(f"slow {word}", title="Slow one", sleep_s={"chunk": 120})
    live_row = page.locator(f'[data-testid="job-row"][data-job-id="{slow}"]')  # type: ignore[attr-defined]
    expect(live_row).to_have_attribute("data-status", "processing", timeout=30_000)  # no reload
    page.get_by_test_id("filter-stage").fill("chunk")  # type: ignore[attr-defined]
    expect(rows).to_have_count(1)
    page.get_by_test_id("filter-pipeline").select_option("two_phase")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()
    page.get_by_test_id("filter-pipeline").select_option("auto")  # type: ignore[attr-defined]
    expect(rows).to_have_count(1)
    page.get_by_test_id("filter-status").select_option("")  # type: ignore[attr-defined]
    page.get_by_test_id("filter-stage").fill("")  # type: ignore[attr-defined]
    page.get_by_test_id("filter-pipeline").select_option("")  # type: ignore[attr-defined]
    expect(rows).to_have_count(20)
    page.screenshot(path=str(ui.shots / "dashboard-jobs.png"))  # type: ignore[attr-defined]
    live_row.get_by_test_id("job-row-cancel").click()
    expect(live_row).to_have_attribute("data-status", "cancelled", timeout=15_000)
    assert ui.live.ledger.get(slow).status is JobStatus.CANCELLED


def test_dashboard_job_page_follows_a_job_live_to_completed(ui: Ui, page: object) -> None:
    steps = {stage: STEP_S for stage in ("chunk", "embed", "index")}
    followed = ui.submit("followed live", title="Followed live", sleep_s=steps)
    page.goto(f"{ui.live.url}/#/jobs/{followed}")  # type: ignore[attr-defined]
    status = page.get_by_test_id("job-page").get_by_test_id("job-status")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("job-title")).to_have_text("Followed live")  # type: ignore[attr-defined]
    assert status.text_content() != "completed"  # opened before the end: the rest is streamed
    expect(page.get_by_test_id("job-stream")).to_have_text("live")  # type: ignore[attr-defined]
    expect(status).to_have_text("completed", timeout=60_000)
    history = ui.live.ledger.get(followed).history
    events = page.get_by_test_id("job-event")  # type: ignore[attr-defined]
    expect(events).to_have_count(len(history))
    assert [int(s) for s in events.evaluate_all("els => els.map(e => e.dataset.seq)")] == [
        e.seq for e in history
    ]
    stages = page.get_by_test_id("stage-row")  # type: ignore[attr-defined]
    assert stages.evaluate_all("els => els.map(e => [e.dataset.stage, e.dataset.state])") == [
        ["metadata", "done"], ["chunk", "done"], ["embed", "done"], ["index", "done"]]  # fmt: skip
    took = stages.get_by_test_id("stage-duration").all_text_contents()
    assert all(t.endswith(("ms", "s")) for t in took) and took[1].endswith(" s")  # ~1 s each
    page.screenshot(path=str(ui.shots / "dashboard-job.png"), full_page=True)  # type: ignore[attr-defined]

    slow = ui.submit("cancelled from its page", title="Cancelled", sleep_s={"chunk": 120})
    ui.live.wait_status(slow, JobStatus.PROCESSING)
    page.goto(f"{ui.live.url}/#/jobs/{slow}")  # type: ignore[attr-defined]
    page.get_by_test_id("job-cancel").click()  # type: ignore[attr-defined]
    expect(status).to_have_text("cancelled", timeout=15_000)
    assert ui.live.ledger.get(slow).status is JobStatus.CANCELLED


def test_dashboard_job_page_shows_a_failure_and_retries_it(ui: Ui, page: object) -> None:
    flag = f"{ui.live.settings.redis_prefix}broken-{uuid.uuid4().hex[:6]}"
    import redis

    client = redis.Redis.from_url(ui.live.settings.redis_url)
    client.set(flag, "1")
    doomed = ui.submit("fails at embed", title="Fails at embed", fail_while={"embed": flag})
    ui.live.wait_status(doomed, JobStatus.FAILED)
    page.goto(f"{ui.live.url}/#/jobs/{doomed}")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("job-error")).to_contain_text("embed fails while")  # type: ignore[attr-defined]
    failed = page.locator('[data-testid="stage-row"][data-stage="embed"]')  # type: ignore[attr-defined]
    expect(failed).to_have_attribute("data-state", "failed")
    expect(failed.get_by_test_id("stage-error")).to_contain_text("PermanentError")
    client.delete(flag)
    client.close()
    page.get_by_test_id("job-retry").click()  # type: ignore[attr-defined]
    status = page.get_by_test_id("job-page").get_by_test_id("job-status")  # type: ignore[attr-defined]
    expect(status).to_have_text("completed", timeout=60_000)
    history = ui.live.ledger.get(doomed).history
    assert [e.reason for e in history].count("retry") == 1


def test_dashboard_submit_doi_and_upload_pdf(ui: Ui, page: object, tmp_path: Path) -> None:
    page.get_by_test_id("nav-submit").click()  # type: ignore[attr-defined]
    expect(page.get_by_test_id("upload-cap")).to_have_text("1 MiB")  # type: ignore[attr-defined]
    page.get_by_test_id("submit-kind").select_option("doi")  # type: ignore[attr-defined]
    page.get_by_test_id("submit-value").fill("10.7554/eLife.01567")  # type: ignore[attr-defined]
    page.get_by_test_id("submit-send").click()  # type: ignore[attr-defined]
    doi_link = page.get_by_test_id("submitted-job").first  # type: ignore[attr-defined]
    expect(doi_link).to_contain_text("10.7554/eLife.01567")
    doi_job = doi_link.get_attribute("data-job-id")

    (pdf, *_) = write_samples(tmp_path / "pdfs")
    page.get_by_test_id("upload-file").set_input_files(str(pdf))  # type: ignore[attr-defined]
    page.get_by_test_id("upload-send").click()  # type: ignore[attr-defined]
    uploaded = page.get_by_test_id("submitted-job").first  # type: ignore[attr-defined]
    expect(uploaded).to_contain_text(pdf.name)
    page.screenshot(path=str(ui.shots / "dashboard-submit.png"))  # type: ignore[attr-defined]
    upload_job = uploaded.get_attribute("data-job-id")
    assert upload_job and upload_job != doi_job
    ui.live.wait_status(upload_job, JobStatus.COMPLETED)
    job = ui.live.ledger.get(upload_job)
    assert (
        job.doc_key.startswith("pdf:sha256:") and job.metadata["request"]["file_name"] == pdf.name
    )

    uploaded.click()
    expect(page.get_by_test_id("job-title")).to_have_text(SAMPLES[0].title)  # type: ignore[attr-defined]
    expect(page.get_by_test_id("job-pdf-source")).to_have_text(re.compile("^PDF from upload"))  # type: ignore[attr-defined]

    ui.live.wait_status(str(doi_job), JobStatus.COMPLETED)
    page.goto(f"{ui.live.url}/#/jobs/{doi_job}")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("job-pdf-source")).to_have_text("no PDF found")  # type: ignore[attr-defined]
    expect(page.get_by_test_id("job-pdf")).to_contain_text("openalex")  # type: ignore[attr-defined]

    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (1024 * 1024 + 10))
    page.get_by_test_id("nav-submit").click()  # type: ignore[attr-defined]
    page.get_by_test_id("upload-file").set_input_files(str(big))  # type: ignore[attr-defined]
    page.get_by_test_id("upload-send").click()  # type: ignore[attr-defined]
    expect(page.get_by_test_id("error-banner")).to_contain_text("the largest upload is 1 MiB")  # type: ignore[attr-defined]
