"""`sslsan serve`: a local web page over the localization library.

`service.LocalizationService` holds the model (loaded once; model calls serialised by a lock);
`jobs.VideoJobs` makes overlay videos in the background; `app.create_app` is the Starlette app; `static/` the page (plain HTML/JS/CSS, no build, no CDN);
`app.listen` binds the socket; the command is `sslsan.commands.serve`.
"""

MAX_UPLOAD_MB = 50  # per request; stated on the page and in `sslsan serve --help`
MAX_VIDEO_SECONDS = 60  # longest video the page makes an overlay video of; stated there and in --help
