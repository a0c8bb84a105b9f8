"""The dashboard's entry script: the shared sidebar filters, then the chosen page.

``streamlit run dashboard/app.py`` (``inferplane dashboard`` does it with the store in
``INFERPLANE_DASHBOARD_STORE``; see ``dashboard.data``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.filters import sidebar

# Not "pages/": Streamlit treats a folder of that name beside the entry script as its own
# page list and shows it in the sidebar before st.navigation replaces it (a flash).
_PAGES = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="inferplane", page_icon=":material/monitoring:", layout="wide")
sidebar()
navigation = st.navigation(
    [
        st.Page(_PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(_PAGES / "cost_performance.py", title="Cost versus performance", icon=":material/insights:"),
        st.Page(_PAGES / "autoscaler.py", title="Autoscaler", icon=":material/tune:"),
        st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page(_PAGES / "what_if.py", title="What-if", icon=":material/calculate:"),
    ]
)
navigation.run()
