# Documentation: every relative link in every Markdown file resolves (files and #anchors). Python 3
# standard library only, no venv; the self-test first shows the checker catches broken links.
TEST_TARGETS += test-docs

.PHONY: test-docs
test-docs:
	python3 tests/check_links.py --self-test
