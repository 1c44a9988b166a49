"""One module per client API byollm answers in (parse, render, render a stream, render an error)."""
