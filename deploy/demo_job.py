"""Run one echo job through the gateway's OGC API and print where to look (used by make demo).

Usage: demo_job.py BASE_URL [BEARER_TOKEN]
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx


def main(base: str, token: str | None) -> int:
    body = {"inputs": {"string_input": "hello from the demo"}}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        if token:
            anonymous = httpx.post(f"{base}/processes/echo/execution", json=body, timeout=30)
            print(f"without token: {anonymous.status_code} {anonymous.json().get('title')}")
        resp = client.post(
            "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
        )
        if resp.status_code != 201:
            print(f"execution refused: {resp.status_code} {resp.text}", file=sys.stderr)
            return 1
        job_url = resp.headers["Location"]
        print(f"job accepted:  {job_url}")
        status: dict = {}
        for _ in range(240):
            status = client.get(job_url).json()
            if status["status"] in ("successful", "failed", "dismissed"):
                break
            time.sleep(0.5)
        print(f"job routed:    {status.get('hpcSite')} - {status.get('routingReason')}")
        print(f"job status:    {status.get('status')} - {status.get('message')}")
        print(f"job results:   {job_url}/results")
        if status.get("status") == "successful":
            print(f"results body:  {client.get(job_url + '/results').text.strip()}")
    slurm_id = status.get("slurmJobId") or ""
    if slurm_id:
        # job ids are per cluster: ask the accounting of the site the job went to
        site = status.get("hpcSite", "hpcgw")
        sacct = "/opt/slurm-24.11/bin/sacct" if site == "mesocentre" else "sacct"
        acct = subprocess.run(
            [sacct, "-j", str(slurm_id), "-X", "-n", "-o", "JobID,Cluster,User,State,Elapsed"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"sacct:         {acct.stdout.strip()}")
    return 0 if status.get("status") == "successful" else 1


if __name__ == "__main__":
    base_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
    sys.exit(main(base_url, sys.argv[2] if len(sys.argv) > 2 else None))
