"""A CheckpointManager's file names, as include/ckpt/detail/checkpoint_naming.hpp reads them.

A template such as ``ckpt-{step:08}.safetensors`` or
``run-e{epoch:03}-{step:08}-{val_loss:.4f}.safetensors`` has a required
``{step}``, an optional ``{epoch}`` and metric fields. A file belongs to the
manager only if its name parses *and* printing the parsed step and epoch back
gives the same text, so ``ckpt-5.safetensors`` is not one of
``ckpt-{step:08}.safetensors``'s.
"""
import re
from dataclasses import dataclass, field

from .errors import ArgumentError, ErrorId

DEFAULT_TEMPLATE = "ckpt-{step:08}.safetensors"

_INTEGER = "([0-9]+)"
_METRIC = r"(-?(?:inf|nan|[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?))"


@dataclass
class ParsedName:
    step: int
    epoch: int = None
    metrics: dict = field(default_factory=dict)


class Naming:
    def __init__(self, template=DEFAULT_TEMPLATE):
        self.template = template
        if not template or template.startswith(".") or "/" in template:
            self._fail("a file name that does not start with '.' and has no '/'")
        self._fields = []  # (name, zero-padded width or None for a metric)
        expression = ""
        position = 0
        while position < len(template):
            opening = template.find("{", position)
            closing = template.find("}", position)
            if closing >= 0 and (opening < 0 or closing < opening):
                self._fail("'{' before every '}'")
            if opening < 0:
                expression += re.escape(template[position:])
                break
            expression += re.escape(template[position:opening])
            closing = template.find("}", opening)
            if closing < 0:
                self._fail("a '}' closing every '{'")
            name, width = self._parse_field(template[opening + 1:closing])
            self._fields.append((name, width))
            expression += _METRIC if width is None else _INTEGER
            position = closing + 1
        if not any(name == "step" for name, _ in self._fields):
            self._fail("a {step} field")
        self._matcher = re.compile(expression)

    def _parse_field(self, text):
        name, colon, spec = text.partition(":")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            self._fail(f"field names made of letters, digits and '_' (found '{{{text}}}')")
        integer = name in ("step", "epoch")
        if not colon:
            return name, 0 if integer else None
        if integer and re.fullmatch(r"0?[0-9]{1,2}", spec):
            return name, int(spec)
        if not integer and re.fullmatch(r"\.[0-9]{1,2}f", spec):
            return name, None  # the precision matters for writing names only
        self._fail(f"':08' after step/epoch or ':.4f' after a metric (found '{{{text}}}')")

    def _fail(self, expected):
        raise ArgumentError(ErrorId.argument_invalid, "", "",
                            f"checkpoint name template '{self.template}': expected {expected}")

    def parse(self, file_name):
        """The step, epoch and metrics in ``file_name``, or None when it is not one of this template's."""
        match = self._matcher.fullmatch(file_name)
        if not match:
            return None
        parsed = ParsedName(0)
        for (name, width), text in zip(self._fields, match.groups()):
            if width is None:
                parsed.metrics[name] = float(text)
                continue
            if len(text) > 19 or f"{int(text):0{width}d}" != text:  # over 64 bits, or not printed this way
                return None
            if name == "step":
                parsed.step = int(text)
            else:
                parsed.epoch = int(text)
        return parsed
