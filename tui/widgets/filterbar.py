"""The filter bar: btshark's -Y language, checked as you type, applied on Enter.

The same compiler as ``btshark read -Y``, so what works on the command line
works here. Empty is neutral (all rows); an invalid filter turns the bar red and
says why, and Enter only puts the cursor where it went wrong until it is valid
(termshark#6). Up and Down walk the filters applied before.
"""
from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Input

from inspector.filters import FilterError, compile_filter


class FilterSyntax(Validator):
    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.success()
        try:
            compile_filter(value)
        except FilterError as exc:
            return self.failure(str(exc))
        return self.success()


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar { dock: top; }
    FilterBar.-valid { border: tall $success; }
    FilterBar.-invalid { border: tall $error; }
    """
    BINDINGS = [
        Binding("up", "history(-1)", "Previous filter", show=False),
        Binding("down", "history(1)", "Next filter", show=False),
        Binding("escape", "clear", "Clear filter", show=False),
    ]

    class Applied(Message):
        """A valid filter was applied (``""``: none)."""

        def __init__(self, expression: str) -> None:
            super().__init__()
            self.expression = expression

    def __init__(self, **kw) -> None:
        super().__init__(placeholder="Filter (-Y): e.g. piece, bt.index >= 3 && session == 2, ip.addr == 10.0.0.0/8, bt.finding",
                         validators=[FilterSyntax()], validate_on=["changed", "submitted"], valid_empty=True,
                         **kw)
        self.history: list[str] = []
        self._at = 0

    @property
    def error(self) -> str | None:
        result = self.validate(self.value)
        if result is None or result.is_valid:
            return None
        return "; ".join(result.failure_descriptions)

    def validate(self, value: str) -> ValidationResult | None:
        """Input's check (it sets -valid/-invalid), but empty is neutral, not green."""
        result = super().validate(value)
        if not value.strip():
            self.remove_class("-valid")
        return result

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.error is not None:
            self.app.bell()
            try:
                compile_filter(self.value)
            except FilterError as exc:  # the cursor goes where the filter went wrong
                if exc.column is not None:
                    self.cursor_position = exc.column - 1
            return
        expression = self.value.strip()
        if expression and (not self.history or self.history[-1] != expression):
            self.history.append(expression)
        self._at = len(self.history)
        self.post_message(self.Applied(expression))

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = max(0, min(len(self.history), self._at + step))
        self.value = self.history[self._at] if self._at < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Applied(""))
