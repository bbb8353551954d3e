"""Rebuild the shipped price table and GPU table from the curated cloud data (run by hand, not by the product).

    python cost_model/data/build.py [--data ../shared/data/cloud]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent

# catalog accelerator name -> row name in gpu_specs.csv
GPU_OF_ACCELERATOR = {
    "H100": "H100-SXM-80GB", "H200": "H200-SXM-141GB", "B200": "B200", "A100": "A100-SXM4-40GB",
    "A100-80GB": "A100-SXM4-80GB", "A10G": "A10G", "L4": "L4", "L40S": "L40S", "T4": "T4", "T4g": "T4g",
    "V100": "V100-SXM2-16GB", "V100-32GB": "V100-SXM2-32GB",
}
SHORT_NAME = {v: k for k, v in GPU_OF_ACCELERATOR.items()}
SHORT_NAME.update({"A40": "A40"})


def build_gpus(data: Path) -> None:
    rows = list(csv.DictReader(open(data / "gpu_specs.csv")))
    out = []
    for r in rows:
        name = SHORT_NAME.get(r["gpu"])
        if name is None:
            continue
        mem_gib = float(r["aws_catalog_memory_mib_per_gpu"]) / 1024 if r["aws_catalog_memory_mib_per_gpu"] else \
            float(r["memory_gb_nominal"]) * 1e9 / 2**30
        bf16 = r["bf16_dense_tflops"] or r["fp16_dense_tflops"]
        out.append({"gpu": name, "memory_gib": round(mem_gib, 3), "mem_bandwidth_gb_per_s": r["mem_bandwidth_gb_per_s"],
                    "bf16_dense_tflops": bf16, "fp8_dense_tflops": r["fp8_dense_tflops"], "source": r["gpu"]})
    with open(HERE / "gpus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)


def build_offerings(data: Path) -> None:
    by_region = list(csv.DictReader(open(data / "aws_gpu_instances_by_region.csv")))
    zones: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for r in csv.DictReader(open(data / "aws_gpu_instances.csv")):
        if not r["price_spot_usd_per_hour"] or not r["price_ondemand_usd_per_hour"]:
            continue
        spot, ondemand = float(r["price_spot_usd_per_hour"]), float(r["price_ondemand_usd_per_hour"])
        if spot >= ondemand or r["availability_zone"].count("-") > 1:
            continue  # capped (no real spot market) or a local zone
        zones.setdefault((r["instance_type"], r["region"]), []).append((spot, r["availability_zone"]))
    out = []
    for r in by_region:
        acc = r["accelerator_name"]
        if acc not in GPU_OF_ACCELERATOR or float(r["accelerator_count"]) < 1 or not r["price_ondemand_usd_per_hour"]:
            continue
        offers = sorted(z for z in zones.get((r["instance_type"], r["region"]), [])
                        if z[0] < float(r["price_ondemand_usd_per_hour"]))
        median = statistics.median(z[0] for z in offers) if offers else None
        out.append({
            "instance_type": r["instance_type"], "gpu": acc, "num_gpus": int(float(r["accelerator_count"])),
            "vcpus": r["vcpus"], "region": r["region"], "ondemand_usd_per_hour": r["price_ondemand_usd_per_hour"],
            "spot_usd_per_hour": "" if median is None else f"{median:.4f}", "num_spot_zones": len(offers),
            "spot_min_usd_per_hour": f"{offers[0][0]:.4f}" if offers else "", "spot_min_zone": offers[0][1] if offers else "",
            "interruption_bucket": r["advisor_interruption_bucket"],
        })
    with open(HERE / "offerings.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data" / "cloud")
    args = parser.parse_args()
    build_gpus(args.data)
    build_offerings(args.data)


if __name__ == "__main__":
    main()
