"""Tool calling: the OpenAI request's tools, the call syntax of the model's template family (`formats`), the
grammar that makes calls parse (`grammar`), and the parser that turns generated text into tool calls
(`parser`)."""
