"""StateLab's Django project: accounts, projects, jobs, artefacts, state sets, usage and the APIs."""
