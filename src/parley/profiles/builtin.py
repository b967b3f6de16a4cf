"""The built-in profiles. A profile of the same name in the profiles file replaces one of these; deleting
that replacement brings the built-in back."""

from __future__ import annotations

from parley.profiles.schema import Example, Profile, ProfileParams

BUILTIN: dict[str, Profile] = {
    "chat": Profile(
        name="chat",
        description="A chat assistant: short, friendly answers in markdown.",
        system_prompt="You are a helpful assistant. Answer briefly and clearly.",
        params=ProfileParams(max_tokens=256),
        adaptive=True,
        format="chat",
        max_paragraphs=4,
        # a sentence with a listed offensive word is held, judged and replaced (`[removed]`) before it leaves
        guard_policy="output:offensive=redact",
        builtin=True,
    ),
    "docs": Profile(
        name="docs",
        description="Documentation: a title, a summary, headings and lists in markdown.",
        system_prompt=(
            "You are a technical writer. Answer as documentation in markdown: start with a title line "
            "beginning with '# ', then a one-sentence summary, then sections with '## ' headings and bullet lists."
        ),
        params=ProfileParams(temperature=0.3, max_tokens=512, repetition_penalty=1.1),
        format="docs",
        builtin=True,
    ),
    "json": Profile(
        name="json",
        description="Data: the answer is one JSON object (constrained decoding; give a json_schema to shape it).",
        system_prompt="You answer with data as a JSON object and nothing else.",
        params=ProfileParams(temperature=0.2),
        format="json",
        builtin=True,
    ),
    "support": Profile(
        name="support",
        description="A customer-support bot kept to its product's topic; other questions are politely refused.",
        system_prompt=(
            "You are the customer-support assistant of {{ product }}. Help with questions about {{ product }}: "
            "{{ topic }}. Be polite and concise. If you do not know, say so and suggest contacting {{ contact }}."
        ),
        variables={"product": "Parley", "contact": "the support team"},
        examples=[
            Example(
                user="How do I reset my API key?",
                assistant="An administrator can create a new key with `parley keys create` and revoke the old one.",
            )
        ],
        params=ProfileParams(temperature=0.3, max_tokens=256),
        adaptive=True,
        format="chat",
        topic="software, servers, API keys, accounts, installation, configuration, errors and troubleshooting",
        guard_policy="output:off_topic=block",
        builtin=True,
    ),
}
