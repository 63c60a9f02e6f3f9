"""`spanbank annotators`: which Label Studio user each pseudonym stands for (local only)."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option


@click.command()
@click.option(
    "--show-emails",
    is_flag=True,
    help="Also show each user's e-mail and user name (kept in the corpus only).",
)
@json_option
@click.pass_obj
def annotators(obj, show_emails, as_json):
    """List annotator pseudonyms with their Label Studio server, user id and work.

    E-mails stay hidden unless --show-emails; --annotators options of other commands take a
    pseudonym, a Label Studio user name or an e-mail.

    Example:

    \b
        spanbank annotators --show-emails
    """
    from spanbank.annotators import list_annotators

    with errors_as_click():
        rows = list_annotators(obj.corpus, show_emails)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no annotators yet (pull annotations with `spanbank pull`)")
    for r in rows:
        user = f"user {r['ls_user_id']} at {r['ls_url']}" if r["ls_url"] else "no Label Studio user"
        if show_emails and r["email"]:
            user += f" ({r['email']}, user name {r['username']})"
        work = f"{r['annotations']} annotation(s)"
        if r["reviews"]:
            work += f", {r['reviews']} review(s)"
        if r["projects"]:
            work += " in " + ", ".join(r["projects"])
        click.echo(f"{r['annotator']}: {user}; {work}")
