"""Python loaders and derive hooks of the bundled datasets (a spec names them as `module:function`)."""
