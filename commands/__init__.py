"""inferplane's face: the command line, `inferplane up`, the control-plane process that
composes the rooms, the demo, the sample data and the benches. The only package that
knows every room; no room imports it."""
