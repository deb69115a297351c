"""The Streamlit scripts that `python -m components run` and `edit` serve: each
`*_app.py` holds the module-level `st.App` (routes and lifespan) and names its page
script. They read the app file's path from the environment variable APP_FILE_VARIABLE,
set by the command line."""

APP_FILE_VARIABLE = "PRESENCE_APP_FILE"
