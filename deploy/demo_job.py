"""Run the demo's jobs through the gateway's OGC API and print where to look (used by make demo).

Usage: demo_job.py BASE_URL [BEARER_TOKEN]                 an echo job
       demo_job.py --ndvi ITEM_URL BASE_URL BEARER_TOKEN   NDVI on a STAC Item of the EO mirror
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import httpx

FINAL = ("successful", "failed", "dismissed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_job(client: httpx.Client, process: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Submit ``body`` asynchronously, wait for the job to end, print its URL and status."""
    resp = client.post(
        f"/processes/{process}/execution", json=body, headers={"Prefer": "respond-async"}
    )
    if resp.status_code != 201:
        print(f"execution refused: {resp.status_code} {resp.text}", file=sys.stderr)
        return None
    job_url = resp.headers["Location"]
    print(f"job accepted:  {job_url}")
    status: dict[str, Any] = {}
    for _ in range(360):
        status = client.get(job_url).json()
        if status["status"] in FINAL:
            break
        time.sleep(0.5)
    print(f"job routed:    {status.get('hpcSite')} - {status.get('routingReason')}")
    print(f"job status:    {status.get('status')} - {status.get('message')}")
    print(f"job results:   {job_url}/results")
    status["url"] = job_url
    return status


def print_sacct(status: dict[str, Any]) -> None:
    """The job's ``sacct`` line, from the accounting of the site it ran on."""
    slurm_id = status.get("slurmJobId") or ""
    if not slurm_id:
        return
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


def echo_job(base: str, token: str | None) -> int:
    body = {"inputs": {"string_input": "hello from the demo"}}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        if token:
            anonymous = httpx.post(f"{base}/processes/echo/execution", json=body, timeout=30)
            print(f"without token: {anonymous.status_code} {anonymous.json().get('title')}")
        status = run_job(client, "echo", body)
        if status is None:
            return 1
        if status.get("status") == "successful":
            print(f"results body:  {client.get(status['url'] + '/results').text.strip()}")
    print_sacct(status)
    return 0 if status.get("status") == "successful" else 1


def ndvi_job(item_url: str, base: str, token: str) -> int:
    """NDVI of the mirror Item's ``image`` asset; prints the published STAC Item and quicklook."""
    body = {"inputs": {"image": {"href": item_url, "asset": "image"}, "red_band": 3, "nir_band": 4}}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        print(f"input item:    {item_url}")
        status = run_job(client, "ndvi", body)
        if status is None:
            return 1
        ok = status.get("status") == "successful"
        if ok:
            links = {link.get("rel"): link.get("href") for link in status.get("links", [])}
            item_href = links.get("describedby")
            print(f"STAC item:     {item_href}")
            item = client.get(item_href).json() if item_href else {}
            quicklook = item.get("assets", {}).get("quicklook", {}).get("href")
            png = client.get(quicklook).content if quicklook else b""
            kind = "PNG" if png.startswith(PNG_MAGIC) else "not a PNG!"
            print(f"quicklook:     {quicklook} ({kind}, {len(png)} bytes)")
            print(
                "  open it:     curl -H"
                ' "Authorization: Bearer $(deploy/keycloak/keycloak.sh token alice)"'
                f" -o quicklook.png {quicklook}"
            )
            stats = item.get("properties", {}).get("hpcgw:values", {}).get("statistics", {})
            if stats.get("mean") is not None:
                print(f"NDVI mean:     {stats['mean']:.3f} over {stats['valid_pixels']} pixels")
            ok = png.startswith(PNG_MAGIC)
    print_sacct(status)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ndvi", metavar="ITEM_URL", help="run NDVI on this STAC Item")
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:5000")
    parser.add_argument("token", nargs="?", default=None)
    args = parser.parse_args(argv)
    if args.ndvi:
        if not args.token:
            parser.error("--ndvi needs a bearer token")
        return ndvi_job(args.ndvi, args.base_url, args.token)
    return echo_job(args.base_url, args.token)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
