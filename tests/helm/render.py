"""Renders or lints charts/mooring with Helm's own engine (PyPI helm-python-sdk, which
binds Helm's Go SDK; no helm binary). Used by tests/chart.rs.

stdin: {"values": {...}, "release": "prod", "namespace": "ops", "lint": false}
stdout: {"manifests": {"mooring/templates/x.yaml": "..."}} or {"lint": {...}}, or
        {"error": "..."} when Helm refuses the values or a template fails.
"""

import json
import pathlib
import sys

import helm_python as helm

request = json.load(sys.stdin)
chart_dir = pathlib.Path(__file__).resolve().parents[2] / "charts" / "mooring"
try:
    if request.get("lint"):
        report = helm.lint(str(chart_dir), request["values"], strict=True,
                           namespace=request["namespace"])
        print(json.dumps({"lint": report}))
    else:
        chart = helm.Chart.load(str(chart_dir))
        manifests = chart.render(request["values"], name=request["release"],
                                 namespace=request["namespace"], is_install=True)
        print(json.dumps({"manifests": manifests}))
except helm.HelmError as e:
    print(json.dumps({"error": str(e)}))
