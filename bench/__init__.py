"""Benchmarks: each ``bench_<area>.py`` module defines ``run(data_dir: Path) -> list[dict]``."""
