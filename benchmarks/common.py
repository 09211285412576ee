"Shared by the benchmark scripts: repeated timing (median, min–max) and a plain table."
import resource, statistics, time


def repeat(fn, runs: int = 3, warmup: int = 0) -> tuple[float, float, float]:
    "Median, min and max seconds of `runs` calls of `fn` (after `warmup` calls)."
    for _ in range(warmup): fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def fmt(stats: tuple[float, float, float], scale: float = 1.0, unit: str = 's') -> str:
    "'median (min–max) unit' of timing stats, optionally scaled (e.g. to per-item figures)."
    med, lo, hi = (v * scale for v in stats)
    return f'{med:.3g} ({lo:.3g}–{hi:.3g}) {unit}'


def table(title: str, header: list[str], rows: list[list]) -> None:
    "Print a fixed-width table."
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f'\n{title}')
    for r in [header, ['-' * w for w in widths], *rows]: print('  ' + '  '.join(str(c).ljust(w) for c, w in zip(r, widths)))


def peak_rss_mb(children: bool = False) -> float:
    "Peak resident memory of this process (or of its finished children, the largest one) in MB."
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024
