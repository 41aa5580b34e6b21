"""The public status page and badges (issue 11): server-rendered HTML, no build step."""
