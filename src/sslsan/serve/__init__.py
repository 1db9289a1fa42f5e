"""`sslsan serve`: a local web page over the localization library.

`service.LocalizationService` holds the model (loaded once; model calls serialised by a lock);
`app.create_app` is the Starlette app; `static/` the page (plain HTML/JS/CSS, no build, no CDN);
`app.listen` binds the socket; the command is `sslsan.commands.serve`.
"""

MAX_UPLOAD_MB = 50  # per request; stated on the page and in `sslsan serve --help`
