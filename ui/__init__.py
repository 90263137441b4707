"""The static web UI (plain HTML, CSS and JavaScript modules), shipped inside the wheel as package data."""
