"""What every checker returns: a verdict that is true when the answer is right, whose str() says
what was wrong, in the language the problems were written in (labkit.i18n)."""

from __future__ import annotations

from labkit.i18n import use


class Verdict:
    """A mixin for the checkers' dataclasses, which have `problems` (one line each; empty when
    right) and `lang` (the language they were written in, made with `language()` as default), and
    write their text in `_text()`: str() writes it in `lang`, so that a Chinese hint never sits
    under an English verdict, whatever the language where it is printed."""

    problems: list[str]
    lang: str

    @property
    def correct(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        with use(self.lang):
            return self._text()

    def _text(self) -> str:
        raise NotImplementedError
