"""Command-line front ends: one thin module per verb.  They parse, call the
library, print, and return an exit status; only here is anything printed."""
