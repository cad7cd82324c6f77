"""The one exception type for problems a user can fix.

Every `OLRError` message is a sentence that says what was wrong and what to do.
The CLI prints it and exits with status 2; the app shows it as an error box.
Anything else that escapes is a bug in OLR Studio, not in the user's input.
"""


class OLRError(Exception):
    """A user-fixable problem; `str(error)` is the sentence to show."""
