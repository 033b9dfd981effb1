"""`ftq jobs create|watch|list`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ftq.services.cli.client import EVAL_DONE, TERMINAL, FtqClient
from ftq.services.cli.team import render
from ftq.services.cli.team.api import (
    EXIT_CODES_HELP,
    FAILED,
    OK,
    USAGE,
    connect,
    console,
    fail,
    print_json,
)

jobs_app = typer.Typer(
    help="Create, watch and list fine-tuning jobs.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@jobs_app.command("create")
def create_command(
    model: Annotated[str, typer.Option(help="base model to fine-tune")],
    training: Annotated[str, typer.Option(help="training dataset id (ds_…)")],
    validation: Annotated[str | None, typer.Option(help="validation dataset id")] = None,
    validation_split: Annotated[
        float | None, typer.Option(help="cut this share of the training set for validation")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="n_epochs (default auto)")] = None,
    suffix: Annotated[str | None, typer.Option(help="suffix of the fine-tuned model")] = None,
    seed: Annotated[int | None, typer.Option(help="training seed")] = None,
    eval_grader: Annotated[
        str | None, typer.Option(help="after success, score base vs fine-tuned with this grader")
    ] = None,
    eval_dataset: Annotated[
        str | None, typer.Option(help="eval dataset (default: the validation split)")
    ] = None,
    eval_max_items: Annotated[int | None, typer.Option(min=1, help="items to score")] = None,
    watch: Annotated[bool, typer.Option(help="then watch it like `ftq jobs watch`")] = False,
    as_json: JsonOption = False,
) -> None:
    """Queue a fine-tuning job."""
    if validation and validation_split is not None:
        raise fail("give --validation or --validation-split, not both", USAGE)
    if (eval_dataset or eval_max_items) and not eval_grader:
        raise fail("--eval-dataset and --eval-max-items need --eval-grader", USAGE)
    body: dict[str, Any] = {"model": model, "training_dataset": training}
    optional = {
        "validation_dataset": validation,
        "validation_split": validation_split,
        "suffix": suffix,
        "seed": seed,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if epochs is not None:
        body["method"] = {"type": "supervised", "hyperparameters": {"n_epochs": epochs}}
    if eval_grader:
        body["eval"] = {"grader": eval_grader, "dataset": eval_dataset}
        if eval_max_items:
            body["eval"]["max_items"] = eval_max_items
    with connect() as client:
        job = dict(client.request("POST", "/v1/jobs", json=body))
        if not as_json:
            console.print(f"job {job['id']} {render.status(job['status'])} ({job['model']})")
        if watch:
            job = _watch(client, job["id"], 1.0, None, quiet=as_json, wait_eval=True)
    _finish(job, as_json, watched=watch)


@jobs_app.command("watch")
def watch_command(
    job_id: Annotated[str, typer.Argument(help="ftj_…")],
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls")] = 1.0,
    timeout: Annotated[float | None, typer.Option(help="give up after this many seconds")] = None,
    wait_eval: Annotated[bool, typer.Option(help="also wait for the job's eval")] = True,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live: status, step progress, losses; ends with the fine-tuned model."""
    with connect() as client:
        job = _watch(client, job_id, interval, timeout, quiet=as_json, wait_eval=wait_eval)
    _finish(job, as_json, watched=True)


@jobs_app.command("list")
def list_command(
    status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The team's jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with connect() as client:
        page = client.request("GET", "/v1/jobs", params=params)
    if as_json:
        print_json(page["data"])
    else:
        console.print(render.jobs_table(page["data"]))


def _finish(job: dict[str, Any], as_json: bool, *, watched: bool) -> None:
    if as_json:
        print_json(job)
    elif watched:
        _summary(job)
    if watched and job["status"] != "succeeded":
        raise typer.Exit(FAILED)
    raise typer.Exit(OK)


def _summary(job: dict[str, Any]) -> None:
    findings = (job.get("diagnosis") or {}).get("findings") or []
    if findings:  # before the last line, which names the fine-tuned model
        console.print("[bold]diagnosis[/]:", soft_wrap=True)
        for finding in findings:
            console.print(f"  {_finding_line(finding)}", soft_wrap=True, markup=False)
    elif job.get("diagnosis"):
        console.print("diagnosis: no problem found")
    if job["status"] == "succeeded":
        console.print(
            f"[green bold]succeeded[/]: fine-tuned model [bold]{job['fine_tuned_model']}[/]"
        )
    else:
        error = job.get("error") or {}
        detail = f": {error.get('code')}: {error.get('message')}" if error else ""
        console.print(f"job {job['id']} {render.status(job['status'])}{detail}", soft_wrap=True)
    ev = job.get("eval")
    if ev and ev.get("results"):
        console.print(render.eval_table(ev))
    elif ev:
        console.print(f"eval {ev.get('id')}: {ev.get('status')}")


def _watch(
    client: FtqClient,
    job_id: str,
    interval: float,
    timeout: float | None,
    *,
    quiet: bool,
    wait_eval: bool,
) -> dict[str, Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        TextColumn("{task.fields[status]:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet) as progress:
        task = progress.add_task("job", total=None, status="", loss="")
        seen = None
        diagnosed: set[str] = set()
        while True:
            job = dict(client.request("GET", f"/v1/jobs/{job_id}"))
            if job["status"] != seen and not quiet:
                progress.console.print(_status_line(job))
            seen = job["status"]
            for finding in (job.get("diagnosis") or {}).get("findings") or []:
                if finding["kind"] not in diagnosed and not quiet:
                    line = f"{time.strftime('%H:%M:%S')} diagnosis {_finding_line(finding)}"
                    progress.console.print(line, soft_wrap=True, markup=False)
                diagnosed.add(finding["kind"])
            progress.update(task, status=job["status"])
            if job["status"] in ("running", "succeeded"):
                _show_metrics(client, job_id, progress, task)
            if job["status"] in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(interval)
    if wait_eval and job["status"] == "succeeded" and _eval_pending(job):
        if not quiet:
            console.print(f"waiting for eval {job['eval'].get('id') or ''}…")
        remaining = None if deadline is None else max(deadline - time.monotonic(), 1.0)
        job = client.wait(
            f"/v1/jobs/{job_id}",
            lambda j: not _eval_pending(j),
            remaining,
            interval,
            f"eval of job {job_id}",
        )
    return job


def _finding_line(finding: dict[str, Any]) -> str:
    """`overfitting: <message> (steps 17-48; next run: n_epochs=2)`."""
    steps = (finding.get("evidence") or {}).get("steps") or []
    where = (
        f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {steps[0]}" if steps else ""
    )
    change = ", ".join(f"{k}={v}" for k, v in (finding.get("suggestion") or {}).items())
    detail = "; ".join(part for part in (where, f"next run: {change}" if change else "") if part)
    return f"{finding['kind']}: {finding['message']}" + (f" ({detail})" if detail else "")


def _eval_pending(job: dict[str, Any]) -> bool:
    ev = job.get("eval") or {}
    return bool(ev) and ev.get("status") not in EVAL_DONE


def _status_line(job: dict[str, Any]) -> str:
    extra = []
    if job.get("queue_position"):
        extra.append(f"queue position {job['queue_position']}")
    if job.get("provider_status"):
        extra.append(f"provider {job['provider_status']}")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{time.strftime('%H:%M:%S')} {job['id']} {render.status(job['status'])}{tail}"


def _show_metrics(client: FtqClient, job_id: str, progress: Progress, task: Any) -> None:
    points = client.request("GET", f"/v1/jobs/{job_id}/metrics")["data"]
    if not points:
        return
    last = points[-1]
    valid = next(
        (p["valid_loss"] for p in reversed(points) if p.get("valid_loss") is not None), None
    )
    loss = f"train loss {render.number(last.get('train_loss'))}  valid loss {render.number(valid)}"
    progress.update(task, completed=last["step"], total=last.get("total_steps"), loss=loss)
