"""Exceptions spanbank raises; the CLI turns each into a one-line error."""


class SpanbankError(Exception):
    """Base class: a problem the user can fix, reported in one line."""


class SchemaError(SpanbankError):
    """A label schema is malformed or a label/attribute is not in it."""


class OffsetError(SpanbankError):
    """A span's offsets do not match the article text."""


class CorpusError(SpanbankError):
    """A corpus table is missing, malformed or inconsistent."""


class LockError(CorpusError):
    """Another process holds the corpus write lock."""


class IngestError(SpanbankError):
    """An input file cannot be read as articles."""


class LabelStudioError(SpanbankError):
    """Label Studio is unreachable, refused the request, or answered badly."""


class AuthError(LabelStudioError):
    """Label Studio refused the API key."""


class LabelStudioServerError(LabelStudioError):
    """Label Studio kept answering a server error (5xx) to a request, through every retry."""


class ListingChangedError(LabelStudioError):
    """A project's tasks were added or deleted while their pages were read: pages are cut by
    offset, so a task moved from one page to another and was missed or seen twice."""


class ServerError(SpanbankError):
    """The local Label Studio server could not be installed, started or stopped."""


class ExportError(SpanbankError):
    """An export could not be written or failed its checks."""


class AnnotatorError(SpanbankError):
    """A name given for an annotator matches no pseudonym, Label Studio user name or e-mail."""


class UnknownProjectError(SpanbankError):
    """No project of that name in the corpus (or on the Label Studio server)."""


class ProjectRenamedError(UnknownProjectError):
    """The project the corpus recorded has another title in Label Studio now."""


class ProjectMissingError(UnknownProjectError):
    """The Label Studio project does not exist on the server (not yet, or not any more)."""


class AgreementError(SpanbankError, ValueError):
    """Agreement cannot be computed from this input or selection."""


class AdjudicationError(SpanbankError, ValueError):
    """Adjudication cannot run on this input or with these options."""
