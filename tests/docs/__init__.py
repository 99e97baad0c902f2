"""Documentation tests: one module per page runs its docs_src samples; test_pages checks the pages as a whole."""
