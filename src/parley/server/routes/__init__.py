"""Route modules: thin functions that parse, call the pipeline and format."""
