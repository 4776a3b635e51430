"""GET /: one small HTML page, rendered on the server (no JavaScript, nothing fetched from elsewhere).

Models with their memory plan against the budget, loaded / busy / queued, and the last requests with route,
confidence, model, finish reason and tokens/s. It reloads itself every 5 seconds (a meta refresh).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ggroute.server.service import ModelsStatus, RecentRow

MB = 1_000_000

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
p.sub { color: #666; margin: 0 0 1rem; }
table { border-collapse: collapse; background: #fff; min-width: 40rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; }
th { background: #f0f0f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #e6e6ea; width: 16rem; height: .8rem; border-radius: .2rem; overflow: hidden; }
.bar span { display: block; height: 100%; background: #4a7bd0; }
.yes { color: #1a7f37; font-weight: 600; } .no { color: #888; } .warn { color: #b35900; font-weight: 600; }
.empty { color: #888; font-style: italic; }
"""


def _num(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _flag(on: bool, label: str = "yes") -> str:
    return f'<span class="yes">{label}</span>' if on else '<span class="no">no</span>'


def _models_table(status: ModelsStatus) -> str:
    budget, used = status["memory_budget_bytes"], status["used_bytes"]
    share = min(100.0, 100.0 * used / budget) if budget else 0.0
    rows = []
    for m in status["models"]:
        estimate = m["estimate_bytes"]
        error = f'<span class="warn">{escape(m["error"] or "")}</span>'
        if m["base_url"] is not None:
            plan = f"remote ({escape(m['backend'])}) at {escape(m['base_url'])}"
        else:
            plan = f"{estimate / MB:.0f} MB" if estimate is not None else error
        rows.append(
            f"<tr><td>{escape(m['name'])}</td><td class=num>{plan}</td><td class=num>{_num(m['context_size'])}</td>"
            f"<td>{_flag(m['loaded'])}{' (loading)' if m['loading'] else ''}</td><td>{_flag(m['busy'])}</td>"
            f"<td class=num>{m['queued']}</td></tr>"
        )
    return (
        f"<p>Loaded models take ~{used / MB:.0f} MB of the {budget / MB:.0f} MB budget (estimates).</p>"
        f'<div class="bar"><span style="width:{share:.1f}%"></span></div><br>'
        "<table><tr><th>model</th><th>plan</th><th>context</th><th>loaded</th><th>busy</th><th>queued</th></tr>"
        + "".join(rows) + "</table>"
    )


def _recent_table(recent: list[RecentRow]) -> str:
    if not recent:
        return '<p class="empty">No requests yet.</p>'
    rows = []
    for r in recent:
        confidence = r["confidence"]
        rows.append(
            f"<tr><td>{escape(str(r['time']))}</td><td>{escape(str(r['requested']))}</td>"
            f"<td>{escape(str(r['route'] or '-'))}</td><td class=num>{_num(confidence, 2)}</td>"
            f"<td>{escape(str(r['model']))}</td><td>{escape(str(r['finish_reason']))}</td>"
            f"<td class=num>{_num(r['completion_tokens'])}</td><td class=num>{_num(r['decode_tokens_per_s'])}</td>"
            f"<td class=num>{_num(r['queue_wait_s'], 2)}</td><td class=num>{_num(r['wall_s'], 2)}</td></tr>"
        )
    return (
        "<table><tr><th>time</th><th>asked for</th><th>route</th><th>confidence</th><th>model</th><th>finish</th>"
        "<th>tokens</th><th>decode tok/s</th><th>queue s</th><th>wall s</th></tr>" + "".join(rows) + "</table>"
    )


def render_status_page(status: ModelsStatus, recent: list[RecentRow], closing: bool) -> str:
    state = '<span class="warn">shutting down</span>' if closing else "serving"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">'
        f"<title>ggroute serve</title><style>{_STYLE}</style></head><body>"
        f'<h1>ggroute serve</h1><p class="sub">{state} · OpenAI-compatible API under /v1 · '
        "JSON: <a href=\"/ggroute/models\">/ggroute/models</a></p>"
        f"<h2>Models</h2>{_models_table(status)}"
        f"<h2>Last requests</h2>{_recent_table(recent)}"
        "</body></html>"
    )
