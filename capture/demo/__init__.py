"""The demo study that `./dev.sh demo` shows: sites, patients, PDX models, form records, scans and
one user per role. It sits above the apps it seeds (studies, definitions, records, imaging) and
only calls their services; none of them imports it."""
