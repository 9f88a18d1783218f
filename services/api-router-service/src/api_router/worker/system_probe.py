"""Readings of the machine a worker runs on: memory, CPU and temperature."""

from __future__ import annotations

from pathlib import Path

import psutil

# Where Linux lists the thermal zones; a containerised worker may see the host's elsewhere.
THERMAL_ZONES = Path("/sys/class/thermal")


def ram_percent() -> float:
    return float(psutil.virtual_memory().percent)


def cpu_percent() -> float:
    """CPU use since the previous call (the first call reads 0)."""
    return float(psutil.cpu_percent(interval=None))


def temp_celsius(zones: Path = THERMAL_ZONES) -> float | None:
    """The hottest thermal zone (a Raspberry Pi has one, the SoC), or None without any."""
    readings = []
    for zone in sorted(zones.glob("thermal_zone*/temp")):
        try:
            readings.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return max(readings) if readings else None
