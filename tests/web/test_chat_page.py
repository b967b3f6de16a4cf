"""The chat page (`/`) in headless Chromium against the real server and model.

The model's text is never written here: an answer the page shows is compared with the same server's own
non-streamed answer to the same messages at temperature 0 (the session server is deterministic, so greedy
answers are equal on any CPU). The page exposes each message's raw text as `data-raw` and its completion id as
`data-completion-id`.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import MODEL
from tests.web.conftest import axe_violations

STAGES = ["input", "preprocess", "model", "output", "postprocess", "final"]
LAST_ANSWER = "#message-list .msg-assistant >> nth=-1"


@pytest.fixture(autouse=True)
def expected_failures(page, page_errors) -> set[str]:
    """URL endings whose failed requests a test expects. Chromium logs every failed fetch as a console error
    ("Failed to load resource"), which a page cannot prevent; those for these URLs are taken out of the errors
    that fail the test."""
    suffixes: set[str] = set()
    seen: list[str] = []

    def on_console(message) -> None:
        url = message.location.get("url", "")
        if (
            message.type == "error"
            and message.text.startswith("Failed to load resource")
            and url.endswith(tuple(suffixes))
        ):
            seen.append(f"console.error: {message.text}")

    page.on("console", on_console)
    yield suffixes
    for entry in seen:
        if entry in page_errors:
            page_errors.remove(entry)


# ---- helpers ----------------------------------------------------------------------------------------------


def open_chat(page, server, *, temperature: float | None = 0, max_tokens: int | None = 24) -> None:
    """Load the page and set the sampling through its settings dialog."""
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.click("#settings-open")
    page.fill("#temperature", "" if temperature is None else str(temperature))
    page.fill("#max-tokens", "" if max_tokens is None else str(max_tokens))
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#settings-dialog", state="hidden")


def send(page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_answered(page, count: int, *, replacing: str | None = None) -> dict:
    """Wait until the page shows `count` finished answers, the last one not `replacing` (an answer id); the
    last one's id, raw text, status and completion id."""
    page.wait_for_function(
        """([n, old]) => { const a = document.querySelectorAll('#message-list .msg-assistant');
                  return a.length === n && a[n - 1].dataset.status !== 'streaming' && a[n - 1].dataset.id !== old; }""",
        arg=[count, replacing],
    )
    return page.eval_on_selector(
        LAST_ANSWER,
        "e => ({id: e.dataset.id, raw: e.dataset.raw, status: e.dataset.status, cid: e.dataset.completionId})",
    )


def server_answer(client, messages: list[dict], max_tokens: int) -> str:
    out = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens)
    return out.choices[0].message.content


def engine_status(http) -> dict:
    return http.get("/parley/status").json()["models"][MODEL]


# ---- 1. streaming ----------------------------------------------------------------------------------------


def test_answer_streams_into_the_page_and_equals_the_servers_own_answer(page, server, client):
    open_chat(page, server, max_tokens=64)
    # Every raw text the answer showed while it was still streaming.
    page.evaluate(
        """() => { window.partials = [];
            new MutationObserver(records => { for (const r of records) {
                const el = r.target;
                if (el.matches?.('.msg-assistant') && el.dataset.status === 'streaming')
                    window.partials.push(el.dataset.raw);
            } }).observe(document.getElementById('message-list'),
                         {subtree: true, attributes: true, attributeFilter: ['data-raw']}); }"""
    )
    question = "Explain in a few sentences what a hash table is."
    send(page, question)
    answer = wait_answered(page, 1)

    assert answer["status"] == "done"
    partials = [p for p in page.evaluate("window.partials") if p]
    assert len(set(partials)) >= 2, f"the answer was drawn {len(set(partials))} time(s) while streaming"
    assert all(answer["raw"].startswith(p) for p in partials)
    assert answer["raw"] == server_answer(client, [{"role": "user", "content": question}], 64)
    assert answer["cid"].startswith("chatcmpl-")
    # Rendered as markdown (not the raw text) once finished.
    assert page.locator(LAST_ANSWER).locator(".msg-body p, .msg-body ul, .msg-body ol, .msg-body pre").count() > 0


# ---- 2. stop ---------------------------------------------------------------------------------------------


def test_stop_cancels_the_generation_and_keeps_the_partial_answer(page, server, http, output_dir):
    before = engine_status(http)["requests_cancelled"]
    open_chat(page, server, max_tokens=400)
    send(page, "Write a long, detailed essay about the history of the Roman Empire.")
    page.wait_for_function(
        "() => document.querySelector('#message-list .msg-assistant[data-status=streaming]')?.dataset.raw.length > 0"
    )
    page.click("#stop")
    answer = wait_answered(page, 1)

    assert answer["status"] == "stopped"
    assert answer["raw"], "the partial answer was dropped"
    assert page.locator(LAST_ANSWER).locator(".msg-stopped").inner_text().strip().startswith("Stopped")
    assert page.locator("#send").is_visible() and page.locator("#stop").is_hidden()
    deadline = time.monotonic() + 15
    while True:
        status = engine_status(http)
        if status["slots_busy"] == 0 and status["requests_cancelled"] > before:
            break
        assert time.monotonic() < deadline, f"slot not freed or cancel not counted: {status}"
        time.sleep(0.1)
    # It stopped early: far fewer tokens than the 400 asked for were shown.
    assert len(answer["raw"]) < 400 * 3
    page.screenshot(path=str(output_dir / "stopped.png"))


# ---- 3. regenerate, edit, branches -----------------------------------------------------------------------


def expect_branch(page, selector: str, position: str) -> None:
    """The message's branch counter reads `position` (waiting for the page to re-render after a click)."""
    pattern = re.compile(rf"^\s*(Version\s*)?{re.escape(position)}\s*$")
    expect(page.locator(selector).locator(".branch-pos")).to_have_text(pattern)


def test_regenerate_and_edit_create_branches_to_move_between(page, server, client):
    open_chat(page, server, max_tokens=16)
    send(page, "Name a colour.")
    first = wait_answered(page, 1)

    page.locator(LAST_ANSWER).locator("[data-action=regenerate]").click()
    second = wait_answered(page, 1, replacing=first["id"])
    assert second["id"] != first["id"] and second["cid"] != first["cid"], "no new answer was generated"
    assert second["raw"] == first["raw"]  # the same messages at temperature 0
    expect_branch(page, LAST_ANSWER, "2/2")

    page.locator(LAST_ANSWER).locator("[data-action=branch-prev]").click()
    expect(page.locator(LAST_ANSWER)).to_have_attribute("data-id", first["id"])
    expect_branch(page, LAST_ANSWER, "1/2")

    user = "#message-list .msg-user >> nth=-1"
    page.locator(user).locator("[data-action=edit]").click()
    page.locator(user).locator(".edit-form textarea").press("Escape")  # cancels: nothing sent
    expect(page.locator(user).locator(".edit-form")).to_have_count(0)
    expect(page.locator(user).locator(".msg-body")).to_be_visible()
    page.locator(user).locator("[data-action=edit]").click()
    page.locator(user).locator(".edit-form textarea").fill("Name a fruit.")
    page.locator(user).locator(".edit-form textarea").press("Enter")
    edited = wait_answered(page, 1, replacing=first["id"])
    expect(page.locator(user)).to_have_attribute("data-raw", "Name a fruit.")
    expect_branch(page, user, "2/2")
    assert edited["id"] not in (first["id"], second["id"])
    assert edited["raw"] == server_answer(client, [{"role": "user", "content": "Name a fruit."}], 16)
    assert page.locator("#message-list .msg").count() == 2

    page.locator(user).locator("[data-action=branch-prev]").click()
    expect(page.locator(user)).to_have_attribute("data-raw", "Name a colour.")
    expect_branch(page, user, "1/2")
    # The original question's branch comes back as it was left: its first answer, of two.
    expect(page.locator(LAST_ANSWER)).to_have_attribute("data-id", first["id"])
    expect_branch(page, LAST_ANSWER, "1/2")


# ---- 4. feedback -----------------------------------------------------------------------------------------


def test_thumbs_down_with_a_correction_reaches_the_feedback_store(page, server, http):
    open_chat(page, server, max_tokens=16)
    send(page, "What is the capital of France?")
    answer = wait_answered(page, 1)
    message = page.locator(LAST_ANSWER)

    message.locator("[data-action=rate-down]").click()
    page.wait_for_function(
        "() => document.querySelector('#message-list .msg-assistant .fb-status')?.dataset.kind === 'ok'"
    )
    assert message.locator("[data-action=rate-down]").get_attribute("aria-pressed") == "true"
    correction = "The capital of France is Paris."
    message.locator("[data-action=suggest]").click()
    message.locator(".suggest-form textarea").press("Escape")  # closes the form, focus back on its button
    expect(message.locator(".suggest-form")).to_have_count(0)
    expect(message.locator("[data-action=suggest]")).to_be_focused()
    message.locator("[data-action=suggest]").click()
    message.locator(".suggest-form textarea").fill(correction)
    message.locator(".suggest-form button[type=submit]").click()
    page.wait_for_selector("#message-list .suggest-form", state="detached")
    assert "suggestion was saved" in message.locator(".fb-status").inner_text()

    stored = http.get("/v1/feedback", params={"completion_id": answer["cid"]}).json()["data"]
    assert len(stored) == 1
    assert stored[0]["rating"] == "down" and stored[0]["correction"] == correction


# ---- 5. trace --------------------------------------------------------------------------------------------


def test_trace_panel_shows_the_six_stages_and_the_guards_verdicts(page, server, http):
    question = "My email is jane.doe@example.com. Say hello."
    reference = http.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": 8, "temperature": 0},
        headers={"X-Parley-Trace": "1"},
    ).json()["parley_trace"]
    verdicts = next(s for st in reference for s in st["steps"] if s["step"] == "guard_input")["detail"]["verdicts"]
    assert verdicts, "the input guard found nothing in an email address: the test needs a verdict to show"

    open_chat(page, server, max_tokens=8)
    send(page, question)
    wait_answered(page, 1)
    page.locator(LAST_ANSWER).locator("[data-action=trace]").click()
    panel = page.locator(LAST_ANSWER).locator(".trace-panel")

    assert panel.locator(".trace-stage").evaluate_all("els => els.map(e => e.dataset.stage)") == STAGES
    durations = panel.locator(".trace-stage > .trace-row .trace-ms").all_inner_texts()
    assert len(durations) == 6 and all(re.fullmatch(r"\d+(\.\d+)? m?s", d) for d in durations), durations
    model_bar = panel.locator(".trace-stage[data-stage=model] .trace-fill").evaluate(
        "e => e.getBoundingClientRect().width"
    )
    assert model_bar > 0
    guard_step = panel.locator(".trace-step[data-step=guard_input]")
    assert guard_step.count() == 1
    guards = panel.locator(".trace-guards").inner_text()
    for verdict in verdicts:
        assert verdict["action"] in guard_step.locator(".badge").inner_text()
        for finding in verdict["findings"]:
            assert f"{finding['scanner']} {finding['kind']}" in guards
    assert panel.locator(".trace-step[data-step=output_guard]").count() == 1
    assert page.locator(LAST_ANSWER).locator("[data-action=trace]").get_attribute("aria-expanded") == "true"


# ---- 6. a long conversation ------------------------------------------------------------------------------

ANSWERS = [
    "Here is a summary of **point {i}**:\n\n- the first item, with `inline code`\n- the second item, *emphasised*\n"
    "- a third item with a [link](https://example.com/{i})\n\n> A quoted remark about step {i}.\n\n"
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
    "A function for case {i}:\n\n```python\ndef step_{i}(items: list[int]) -> int:\n"
    "    total = 0\n    for n in items:\n        if n % 2 == 0:\n            total += n * {i}\n"
    "        else:\n            total -= n\n    return total\n\n\nclass Counter{i}:\n    def __init__(self):\n"
    "        self.count = 0\n\n    def bump(self) -> None:\n        self.count += 1\n```\n\nIt returns an `int`.",
    "The identity $e^{{i\\pi}} + 1 = 0$ holds, and for {i} terms\n\n"
    "$$\\sum_{{k=1}}^{{{i}}} k = \\frac{{{i}({i}+1)}}{{2}}$$\n\nAlso \\(\\alpha + \\beta = \\gamma\\) and\n\n"
    "\\[\\int_0^1 x^2\\,dx = \\frac{{1}}{{3}}\\]\n\nwhich closes case {i}.",
    "| n | square | cube |\n|---|---|---|\n| {i} | {sq} | {cu} |\n| 2 | 4 | 8 |\n\n```js\nconst f = (x) => x * {i};\n"
    "console.log([1, 2, 3].map(f));\n```\n\n1. first\n2. second\n3. third",
]


def long_conversation(count: int = 500) -> dict:
    messages, parent = [], None
    for i in range(count):
        if i % 2 == 0:
            content = f"Question {i}: could you explain part {i} of the topic, with an example?"
        else:
            content = ANSWERS[(i // 2) % len(ANSWERS)].format(i=i, sq=i * i, cu=i**3)
        messages.append(
            {"id": f"m{i}", "parent": parent, "role": "user" if i % 2 == 0 else "assistant", "content": content}
        )
        parent = f"m{i}"
    return {
        "format": "parley-conversation",
        "version": 1,
        "id": "c-long",
        "title": "Five hundred messages",
        "messages": messages,
    }


def test_a_500_message_conversation_opens_scrolls_and_streams_without_long_tasks(page, server, output_dir):
    open_chat(page, server, max_tokens=32)
    # From here on: every task over 50 ms the page runs (`buffered`: none is missed between the calls).
    page.evaluate(
        """() => { window.t0 = performance.now(); window.longTasks = [];
            new PerformanceObserver(list => { for (const e of list.getEntries())
                window.longTasks.push({start: e.startTime, duration: e.duration}); })
              .observe({type: 'longtask', buffered: true}); }"""
    )
    page.set_input_files(
        "#import-file",
        files=[
            {"name": "long.json", "mimeType": "application/json", "buffer": json.dumps(long_conversation()).encode()}
        ],
    )
    page.wait_for_function("() => document.querySelectorAll('#message-list .msg').length === 500")
    page.screenshot(path=str(output_dir / "opened.png"))
    steps = page.evaluate(
        """async () => { const s = document.getElementById('messages');
            const frame = () => new Promise(r => requestAnimationFrame(r));
            s.scrollTop = 0; await frame(); await frame();
            let steps = 0;
            while (s.scrollTop + s.clientHeight < s.scrollHeight - 2) {
                s.scrollTop += s.clientHeight; steps++; await frame(); await frame();
            }
            return steps; }"""
    )
    assert steps > 50, "the conversation was not rendered at its full length"
    rendered = page.locator("#message-list .msg-assistant:not(.pending) .katex").count()
    assert rendered > 0, "scrolling did not render the answers' markdown"
    send(page, "Thank you. Summarise our conversation in one sentence.")
    answer = wait_answered(page, 251)
    assert answer["status"] == "done" and answer["raw"]
    # Only the latest messages fit the 2048-token window; the answer says so (and no request failed: a 400
    # would be a console error).
    assert "do not fit the model's context window" in page.locator(LAST_ANSWER).locator(".msg-note").inner_text()

    tasks = page.evaluate("window.longTasks.filter(t => t.start >= window.t0)")
    longest = max((t["duration"] for t in tasks), default=0)
    (output_dir / "longtasks.json").write_text(json.dumps({"longest_ms": longest, "tasks": tasks}, indent=1))
    print(f"\n500 messages: {len(tasks)} long task(s), the longest {longest:.0f} ms, {steps} scroll steps")
    assert longest < 200, f"a task took {longest:.0f} ms: {tasks}"


# ---- 7. accessibility and keyboard -----------------------------------------------------------------------


def describe(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}" for v in violations
    )


def test_page_passes_axe_and_works_from_the_keyboard(page, server):
    open_chat(page, server, max_tokens=8)
    violations = axe_violations(page)
    assert not violations, describe(violations)

    page.reload()  # the keyboard walk starts at the top of a fresh page (the settings stay in localStorage)
    page.wait_for_selector("body[data-ready=true]")
    order = []
    for _ in range(30):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
        if order[-1] == "send":
            break
    assert order[0] == "skip-link", order
    assert "prompt" in order and "send" in order and order.index("prompt") == order.index("send") - 1, order
    assert order.index("sidebar-toggle") < order.index("new-chat") < order.index("prompt"), order

    page.focus("#prompt")
    page.keyboard.type("Say hi.")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Briefly.")
    assert page.input_value("#prompt") == "Say hi.\nBriefly."
    page.keyboard.press("Enter")
    wait_answered(page, 1)
    assert page.locator("#message-list .msg-user").get_attribute("data-raw") == "Say hi.\nBriefly."
    page.locator(LAST_ANSWER).locator("[data-action=trace]").click()
    violations = axe_violations(page)
    assert not violations, describe(violations)

    # Escape stops an answer.
    page.click("#settings-open")
    page.fill("#max-tokens", "400")
    page.click("#settings-form button[type=submit]")
    page.focus("#prompt")
    page.keyboard.type("Write a long essay about the oceans.")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#message-list .msg-assistant[data-status=streaming]')?.dataset.raw.length > 0"
    )
    page.keyboard.press("Escape")
    assert wait_answered(page, 2)["status"] == "stopped"


# ---- 8. phone width --------------------------------------------------------------------------------------


def test_page_is_usable_at_phone_width(page, server, output_dir):
    page.set_viewport_size({"width": 375, "height": 740})
    open_chat(page, server, max_tokens=8)
    toggle = page.locator("#sidebar-toggle")
    assert page.locator("#prompt").is_visible() and page.locator("#send").is_visible()
    box = page.locator("#composer").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["y"] + box["height"] <= 740
    assert page.locator("#sidebar").is_hidden() and toggle.get_attribute("aria-expanded") == "false"

    toggle.click()
    assert page.locator("#sidebar").is_visible() and toggle.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(output_dir / "drawer.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(toggle).to_be_focused()

    send(page, "Hello!")
    wait_answered(page, 1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    toggle.click()
    page.locator("#conversation-list .conversation-open").first.click()  # opening one closes the drawer
    expect(page.locator("#sidebar")).to_be_hidden()


# ---- errors, pickers, conversation list ------------------------------------------------------------------


def test_errors_show_the_servers_message_and_a_401_asks_for_a_key(page, server, http, expected_failures, output_dir):
    expected_failures.add("/v1/chat/completions")
    too_long = " ".join(f"word{i}" for i in range(2500))  # one message beyond the 2048-token window
    reference = http.post(
        "/v1/chat/completions",
        json={"model": MODEL, "max_tokens": 16, "temperature": 0, "messages": [{"role": "user", "content": too_long}]},
    )
    assert reference.status_code == 400
    open_chat(page, server, max_tokens=16)
    send(page, too_long)
    answer = wait_answered(page, 1)
    assert answer["status"] == "error"
    assert page.locator(LAST_ANSWER).locator(".msg-error").inner_text() == reference.json()["error"]["message"]

    # A server with keys answers 401 without one (this open-mode server cannot, so the route stands in for it).
    def require_key(route) -> None:
        if route.request.headers.get("authorization") == "Bearer sk-test-key":
            route.continue_()
        else:
            route.fulfill(
                status=401,
                json={
                    "error": {
                        "message": "An API key is required.",
                        "param": None,
                        "type": "invalid_request_error",
                        "code": "missing_api_key",
                    }
                },
            )

    page.route("**/v1/chat/completions", require_key)
    page.click("#sidebar #new-chat")
    send(page, "Hello.")
    assert wait_answered(page, 1, replacing=answer["id"])["status"] == "error"
    note = page.locator(LAST_ANSWER).locator(".msg-error")
    expect(note).to_contain_text("An API key is required.")
    page.screenshot(path=str(output_dir / "401.png"))
    note.get_by_role("button", name="Enter an API key").click()
    expect(page.locator("#api-key")).to_be_focused()
    page.fill("#api-key", "sk-test-key")
    page.click("#settings-form button[type=submit]")
    assert page.evaluate("localStorage.getItem('parley.apiKey')") == "sk-test-key"
    failed = page.locator(LAST_ANSWER).get_attribute("data-id")
    page.locator(LAST_ANSWER).locator("[data-action=regenerate]").click()
    assert wait_answered(page, 1, replacing=failed)["status"] == "done"


def test_pickers_list_adapters_and_profiles_and_requests_carry_the_choices(page, server, http):
    def with_adapter(route) -> None:
        response = route.fetch()
        data = response.json()
        data["data"].append(
            {"id": "support-lora", "object": "model", "context_window": 2048, "root": MODEL, "parent": MODEL}
        )
        route.fulfill(response=response, json=data)

    page.route("**/v1/models", with_adapter)
    for name, description in (("concise", "Short answers"), ("careful", "")):
        put = http.put(f"/v1/profiles/{name}", json={"description": description, "system_prompt": "Be brief."})
        assert put.status_code in (200, 201), put.text
    listed = [p["name"] for p in http.get("/v1/profiles").json()["data"]]
    assert {"concise", "careful", "chat"} <= set(listed)
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/v1/chat/completions") else None)
    open_chat(page, server, max_tokens=8)

    groups = page.eval_on_selector(
        "#model-select",
        "s => [...s.querySelectorAll('optgroup')].map(g => [g.label, [...g.children].map(o => o.value)])",
    )
    assert groups == [[MODEL, [MODEL, "support-lora"]]]
    assert page.eval_on_selector_all("#profile-select option", "os => os.map(o => o.value)") == ["", *listed]

    page.click("#settings-open")
    page.fill("#system-prompt", "You are terse.")
    page.click("#settings-form button[type=submit]")
    page.select_option("#profile-select", "concise")
    send(page, "Hi.")
    first = wait_answered(page, 1)
    assert first["status"] == "done"
    sent = requests[-1]
    assert sent.headers.get("x-parley-profile") == "concise" and "authorization" not in sent.headers
    body = sent.post_data_json
    assert body["model"] == MODEL and body["temperature"] == 0 and body["max_tokens"] == 8 and body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi."}]

    page.select_option("#profile-select", "")  # default: no header
    page.locator(LAST_ANSWER).locator("[data-action=regenerate]").click()
    wait_answered(page, 1, replacing=first["id"])
    assert "x-parley-profile" not in requests[-1].headers
    for name in ("concise", "careful"):
        http.delete(f"/v1/profiles/{name}")


def small_conversation(cid: str, title: str, question: str, answers: list[str]) -> dict:
    messages = [{"id": "q", "parent": None, "role": "user", "content": question}]
    messages += [{"id": f"a{i}", "parent": "q", "role": "assistant", "content": a} for i, a in enumerate(answers)]
    return {
        "format": "parley-conversation",
        "version": 1,
        "id": cid,
        "title": title,
        "current": "a0",
        "messages": messages,
    }


def test_conversations_are_kept_searched_renamed_exported_and_deleted(page, server):
    tides = small_conversation(
        "c-tides",
        "How tides work",
        "How do tides work?",
        ["The **moon** pulls the oceans.", "Gravity from the moon and the sun."],
    )
    bread = small_conversation("c-bread", "Bread", "A bread recipe?", ["Mix flour, water, salt and yeast."])
    open_chat(page, server)
    page.set_input_files(
        "#import-file",
        files=[
            {
                "name": "two.json",
                "mimeType": "application/json",
                "buffer": json.dumps({"conversations": [tides, bread]}).encode(),
            }
        ],
    )
    titles = page.locator("#conversation-list .conversation-open")
    expect(titles).to_have_count(2)
    expect(page.locator("#message-list .msg")).to_have_count(2)  # the first imported one is open
    expect_branch(page, LAST_ANSWER, "1/2")

    page.fill("#conversation-search", "flour")  # in a message of one conversation only
    expect(titles).to_have_text(["Bread"])
    page.fill("#conversation-search", "")
    expect(titles).to_have_count(2)

    page.locator(".conversation[data-id=c-tides] [data-action=rename]").click()
    page.locator(".conversation[data-id=c-tides] .rename-input").fill("Tides")
    page.keyboard.press("Enter")
    expect(page.locator(".conversation[data-id=c-tides] .conversation-open")).to_have_text("Tides")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator(".conversation[data-id=c-tides] .conversation-open")).to_have_text("Tides")

    page.locator(".conversation[data-id=c-tides] .conversation-open").click()
    page.locator(LAST_ANSWER).locator("[data-action=branch-next]").click()
    with page.expect_download() as download:
        page.click("#export-chat")
    exported = json.loads(download.value.path().read_text())
    assert exported["format"] == "parley-conversation" and exported["title"] == "Tides"
    assert exported["current"] == "a1"  # the branch on screen
    fields = ("id", "parent", "role", "content")
    assert [{k: m[k] for k in fields} for m in exported["messages"]] == [
        {k: m[k] for k in fields} for m in tides["messages"]
    ]

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".conversation[data-id=c-bread] [data-action=delete]").click()
    expect(titles).to_have_text(["Tides"])
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#conversation-list .conversation-open")).to_have_text(["Tides"])


def test_markdown_is_sanitised_and_math_stays_out_of_code(page, server):
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")

    def render(text: str) -> str:
        return page.evaluate("async t => (await import('./static/chat/render.js')).renderMarkdown(t)", text)

    def dangers(text: str) -> list[str]:
        """Scripts, event-handler attributes and javascript: URLs in the HTML rendered for `text`."""
        return page.evaluate(
            """async t => { const tpl = document.createElement('template');
                tpl.innerHTML = (await import('./static/chat/render.js')).renderMarkdown(t);
                return [...tpl.content.querySelectorAll('*')].flatMap(e => [
                    ...(e.tagName === 'SCRIPT' ? ['script'] : []),
                    ...[...e.attributes].filter(a => a.name.startsWith('on')
                        || /^\\s*javascript:/i.test(a.value)).map(a => `${e.tagName} ${a.name}`)]); }""",
            text,
        )

    for attack in [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "[link](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        '![i](x" onerror="alert(1))',
        "$\\href{javascript:alert(1)}{x}$",
        "[x](JaVaScRiPt:alert(1))",
    ]:
        assert not dangers(attack), attack
    assert 'rel="noopener noreferrer nofollow"' in render("see https://example.com")

    math = render("Euler: $e^{i\\pi}+1=0$, \\(a^2\\), and\n\n$$\\int_0^1 x\\,dx$$\n\n\\[\\frac12\\]")
    assert math.count('class="katex"') == 4 and math.count("katex-display") == 2
    code = render("`$x$` costs $5 and $10\n\n```python\nprice = '$a$'  # $$b$$\n```")
    assert "katex" not in code and "<code>$x$</code>" in code and "costs $5 and $10" in code
    assert 'class="hljs language-python"' in code and "hljs-string" in code


def test_code_blocks_are_highlighted_and_their_copy_button_copies_the_code(page, server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    code = "def total(xs):\n    return sum(x * 2 for x in xs)  # <b>not bold</b>"
    conversation = small_conversation("c-code", "Code", "A function?", [f"Here:\n\n```python\n{code}\n```\n\nDone."])
    open_chat(page, server)
    page.set_input_files(
        "#import-file",
        files=[{"name": "code.json", "mimeType": "application/json", "buffer": json.dumps(conversation).encode()}],
    )
    block = page.locator(LAST_ANSWER).locator(".code-block")
    expect(block).to_have_count(1)
    assert block.locator("code.hljs .hljs-keyword").count() > 0
    block.get_by_role("button", name="Copy code").click()
    button = block.locator(".code-copy")  # not by its name: the name changes
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == code
