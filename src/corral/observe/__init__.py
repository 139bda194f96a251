"""What Corral reports about itself.

Worker side: stats.py (per-request counters), access.py (access log lines), titles.py.
Master side: state.py (aggregated worker state), metrics.py (Prometheus exposition),
httpd.py (/metrics, /healthz, /readyz). Import the modules directly: metrics.py loads
prometheus-client, which workers never need.
"""
