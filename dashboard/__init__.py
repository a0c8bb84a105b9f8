"""The Streamlit dashboard: cost next to performance, read from the store only.

Start it with ``inferplane dashboard [--store URL] [--config FILE] [--port N]``, which
runs ``streamlit run dashboard/app.py`` with these environment variables (see
``dashboard.data``): ``INFERPLANE_DASHBOARD_STORE`` (the store URL),
``INFERPLANE_DASHBOARD_CONFIG`` (an ``inferplane.yaml``, optional) and
``INFERPLANE_DASHBOARD_NOW`` (a fixed "now", for tests). Pages are thin scripts in
``views/``; reads go through ``data`` (cached), figures through ``figures`` and
``whatif`` (pure), charts through ``charts``.
"""
