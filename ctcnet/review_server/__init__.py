"""``ctcnet review``'s web server, the browser review loop on 127.0.0.1: ``server`` (the HTTP
routes), ``app`` (the samples of one results folder, kept current), ``sample`` (one sample's
candidates, decisions and sign-off), ``sample_images`` (its tiles and context views),
``tiles`` (tiles cut from the frames on demand) and ``review_page.html`` (the page)."""
