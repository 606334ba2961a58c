"""The one table that ends tools/gpu_check.sh: every step's status and the measured figures
against the targets of issue 12, read from the step outputs in the results folder.

Usage::

    python benchmarks/gpu_report.py RESULTS_DIR [--dry-run]

Exit status 1 if a step failed (a step that could not run here is listed, not failed). Targets
are judged only on a GPU run; the dry run shows them as ``n/a``.
"""
import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# (description, target) of issue 12's GPU targets; judged on the measured rows below
TARGET_SHAPE, TARGET_DTYPE = '1024x2048', 'bfloat16'
FWD_BWD_SPEEDUP, EXTRA_MEM_RATIO, COPY_FRACTION, VOLO_RATIO = 3.0, 4.0, 0.5, 1.0


def read_steps(folder):
    steps = []
    path = folder / 'steps.tsv'
    for line in path.read_text().splitlines() if path.exists() else []:
        name, rc, seconds, *reason = line.split('\t')
        steps.append(dict(name=name, rc=rc, seconds=int(seconds), reason=reason[0] if reason else ''))
    return steps


def junit_summary(path):
    """'N passed, F failed, S skipped' from a pytest junit file, or None."""
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suite = root if root.tag == 'testsuite' else root.find('testsuite')
    total, skipped = int(suite.get('tests', 0)), int(suite.get('skipped', 0))
    failed = int(suite.get('failures', 0)) + int(suite.get('errors', 0))
    return f'{total - failed - skipped} passed, {failed} failed, {skipped} skipped'


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok, dry):
    return 'n/a (dry run)' if dry else ('PASS' if ok else 'FAIL')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path)
    parser.add_argument('--dry-run', action='store_true')
    args = parser.parse_args(argv)
    folder, dry = args.folder, args.dry_run
    rows, failed = [], False

    steps = read_steps(folder)
    for s in steps:
        if s['rc'] == 'skip':
            rows.append((f"step {s['name']}", f"not run: {s['reason']}", 'runs', 'NOT RUN'))
            continue
        ok = s['rc'] == '0'
        failed |= not ok
        detail = f"exit {s['rc']}, {s['seconds']} s"
        summary = junit_summary(folder / f"{s['name']}.xml")
        if summary:
            detail += f'; {summary}'
        rows.append((f"step {s['name']}", detail, 'exit 0', 'PASS' if ok else 'FAIL'))
    total_s = sum(s['seconds'] for s in steps)
    rows.append(('whole script (steps)', f'{total_s} s', '< 480 s on the GPU', verdict(total_s < 480, dry)))

    op = load(folder / 'op_bench.json')
    if op:
        rows.append(('device-to-device copy', f"{op['copy_gbs']:.1f} GB/s", 'measured here', ''))
        for r in op['rows']:
            ref, fused = r['reference'], r['fused']
            tag = f"op {r['shape']} B{r['batch']} {r['dtype']}"
            speed = ref['fwd_bwd'] / fused['fwd_bwd']
            extra = ref['extra'] / fused['extra']
            peak = (f", peak {fused['peak']:.0f} vs {ref['peak']:.0f} MiB "
                    f"({ref['peak'] / fused['peak']:.2f}x)") if 'peak' in fused else ''
            frac = fused['gbs'] / op['copy_gbs']
            judged = r['shape'] == TARGET_SHAPE and r['dtype'] == TARGET_DTYPE
            rows.append((f'{tag} fwd+bwd', f"fused {fused['fwd_bwd']:.3f} ms vs unfold/fold "
                         f"{ref['fwd_bwd']:.3f} ms: {speed:.2f}x",
                         f'>= {FWD_BWD_SPEEDUP}x' if judged else '',
                         verdict(speed >= FWD_BWD_SPEEDUP, dry) if judged else ''))
            rows.append((f'{tag} extra memory', f"fused {fused['extra']:.1f} vs {ref['extra']:.1f} MiB "
                         f'({extra:.2f}x less){peak}', f'>= {EXTRA_MEM_RATIO}x' if judged else '',
                         verdict(extra >= EXTRA_MEM_RATIO, dry) if judged else ''))
            judged_bw = r['shape'] == TARGET_SHAPE
            rows.append((f'{tag} fwd bandwidth', f"fused {fused['fwd']:.3f} ms, {fused['gbs']:.1f} GB/s "
                         f'= {100 * frac:.0f}% of copy (unfold/fold {ref["fwd"]:.3f} ms)',
                         f'>= {100 * COPY_FRACTION:.0f}%' if judged_bw else '',
                         verdict(frac >= COPY_FRACTION, dry) if judged_bw else ''))
            rows.append((f'{tag} max abs diff', ' / '.join(f'{d:.1e}' for d in r['max_abs_diff']),
                         'out / grad_v / grad_a', ''))

    for amp in ('fp16', 'bf16'):
        models = load(folder / f'models_{amp}.json')
        for r in (models or {}).get('rows', []):
            judged = r['case'] == 'volo_d1' and r['size'] == 224
            rows.append((f"{r['case']} {r['size']} B{r['batch']} {amp} AMP fwd+bwd",
                         f"ours {r['ours_ms']:.1f} ms vs timm {r['ref_ms']:.1f} ms: "
                         f"{r['ratio']:.2f}x timm's throughput"
                         + (f", peak {r['ours_mib']:.0f} vs {r['ref_mib']:.0f} MiB" if 'ours_mib' in r else '')
                         + f", max abs diff {r['diff']:.1e}",
                         f'>= {VOLO_RATIO}x' if judged else '',
                         verdict(r['ratio'] >= VOLO_RATIO, dry) if judged else ''))

    print(f'\n## gpu_check results ({"dry run on CPU: toy sizes, targets not judged" if dry else "GPU"})\n')
    print('| check | measured | target | verdict |')
    print('| --- | --- | --- | --- |')
    for row in rows:
        print('| ' + ' | '.join(str(c).replace('|', '/') for c in row) + ' |')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
