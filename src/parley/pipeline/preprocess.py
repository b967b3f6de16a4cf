"""Stage 2, preprocessing: normalise text, enforce output format, apply the chat template, tokenise,
and check the context window."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator, SchemaError
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from parley.errors import ContentFiltered, ContextLengthExceeded, InvalidRequest
from parley.guards.base import Action
from parley.guards.output_guard import canary_instruction
from parley.pipeline.normalize import NormalizeReport, normalize_text
from parley.pipeline.turn import Message, Turn
from parley.protocol.openai import ChatCompletionRequest

MAX_LOGIT_BIAS = 300

JSON_INSTRUCTION = "Respond only with a JSON object."


class PreprocessStage:
    name = "preprocess"

    def run(self, turn: Turn) -> None:
        engine = turn.engine_required
        report = NormalizeReport()
        if turn.kind == "chat":
            for i, msg in enumerate(turn.messages):
                clean = normalize_text(msg.content, report)
                if clean != msg.content:
                    report.changed_messages.append(i)
                msg.content = clean
            self._guard_input(turn)
            self._response_format(turn)
            turn.prompt = engine.apply_chat_template([m.__dict__ for m in turn.messages])
            turn.prompt_tokens = engine.tokenize(turn.prompt)
        elif isinstance(turn.raw_prompt, list):
            bad = [t for t in turn.raw_prompt if not 0 <= t < engine.info.n_vocab]
            if bad:
                raise InvalidRequest(f"Token id {bad[0]} is outside the vocabulary.", param="prompt")
            turn.prompt_tokens = list(turn.raw_prompt)
            turn.prompt = engine.detokenize(turn.prompt_tokens)
        else:
            turn.prompt = normalize_text(str(turn.raw_prompt), report)
            turn.prompt_tokens = engine.tokenize(turn.prompt, special=False)
        self._check_logit_bias(turn)
        window = engine.info.context_window
        if len(turn.prompt_tokens) >= window:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, your messages resulted "
                f"in {len(turn.prompt_tokens)} tokens. Please reduce the length of the messages.",
                param="messages" if turn.kind == "chat" else "prompt",
            )
        turn.note(
            self.name,
            prompt_tokens=len(turn.prompt_tokens),
            context_window=window,
            response_format=turn.response_format,
            normalized={k: v for k, v in report.__dict__.items() if v},
        )

    def _guard_input(self, turn: Turn) -> None:
        """Scan what users and tools wrote (the operator's system prompt is trusted), apply the policy, and
        plant a canary in the operator's system prompt so the output guard can see it leak."""
        guards = turn.guards
        if guards is None:
            return
        policy = guards.input_policy(turn.key_policy)
        verdicts = []
        for i, msg in enumerate(turn.messages):
            if msg.role not in ("user", "tool"):
                continue
            result = guards.input.check(msg.content, policy)
            if result.findings:
                verdicts.append({"message": i, "action": result.action, "findings": result.summary()})
            if result.action is Action.BLOCK:
                turn.note(self.name, input_guard=verdicts)
                kinds = sorted({f.kind for f in result.findings if policy.actions.get(f.scanner) is Action.BLOCK})
                raise ContentFiltered(
                    f"The prompt was blocked by the input guard ({', '.join(kinds) or 'policy'}).",
                    param=f"messages[{i}].content",
                )
            msg.content = result.text
        turn.note(self.name, input_guard=verdicts)
        output_policy = guards.output_policy(turn.key_policy)
        question = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        if "off_topic" in output_policy.actions and (off := guards.off_topic(question)):
            turn.refusal = off[1]
            turn.note(self.name, off_topic={"similarity": round(off[0], 3), "topic": guards.topic})
        system = next((m for m in turn.messages if m.role == "system"), None)
        if system is not None and "leak" in output_policy.actions:
            turn.system_prompt = system.content
            turn.canary = guards.canary_for(system.content)
            system.content += canary_instruction(turn.canary)

    def _response_format(self, turn: Turn) -> None:
        req = turn.request
        assert isinstance(req, ChatCompletionRequest)
        fmt = req.response_format
        if fmt is None or fmt.type == "text":
            return
        turn.response_format = fmt.type
        instruction = JSON_INSTRUCTION
        if fmt.type == "json_object":
            turn.grammar = JSON_GBNF
        else:
            if fmt.json_schema is None or not fmt.json_schema.schema_:
                raise InvalidRequest("json_schema.schema is required.", param="response_format.json_schema")
            schema = fmt.json_schema.schema_
            try:
                Draft202012Validator.check_schema(schema)
                turn.grammar = json_schema_to_gbnf(json.dumps(schema))
            except SchemaError as exc:
                raise InvalidRequest(f"Invalid JSON schema: {exc.message}", param="response_format") from exc
            except (ValueError, KeyError, TypeError, NotImplementedError, RecursionError) as exc:
                raise InvalidRequest(
                    f"This JSON schema cannot be enforced: {exc}", param="response_format"
                ) from exc
            turn.json_schema = schema
            instruction += " It must match this JSON schema: " + json.dumps(schema, separators=(",", ":"))
        # Small models follow the grammar better when the prompt also asks for JSON.
        if turn.messages and turn.messages[0].role == "system":
            turn.messages[0].content = f"{turn.messages[0].content}\n\n{instruction}".strip()
        else:
            turn.messages.insert(0, Message("system", instruction))

    def _check_logit_bias(self, turn: Turn) -> None:
        bias = turn.request.logit_bias or {}
        if len(bias) > MAX_LOGIT_BIAS:
            raise InvalidRequest(f"logit_bias may hold at most {MAX_LOGIT_BIAS} entries.", param="logit_bias")
        n_vocab = turn.engine_required.info.n_vocab
        for key, value in bias.items():
            if not key.lstrip("-").isdigit() or not 0 <= int(key) < n_vocab:
                raise InvalidRequest(f"logit_bias key {key!r} is not a token id.", param="logit_bias")
            if not -100 <= value <= 100:
                raise InvalidRequest("logit_bias values must be between -100 and 100.", param="logit_bias")
