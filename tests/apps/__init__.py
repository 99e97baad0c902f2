"""Apps that tests serve with a real uvicorn process (``run_uvicorn("tests.apps.<module>:app")``)."""
