# Run once by tests/support/redmine.py through `rails runner` on a freshly migrated
# database with Redmine's default data: turns the REST API on, gives the admin an API
# key, adds the custom field that holds courier's correlation key, and a project.
# Prints what the tests need as one line of JSON.
require 'json'

Setting.rest_api_enabled = '1'
admin = User.find_by_login('admin')
admin.update!(must_change_passwd: false)
field = IssueCustomField.create!(
  name: 'Correlation key', field_format: 'string', is_for_all: true,
  is_filter: true, searchable: true, tracker_ids: Tracker.pluck(:id)
)
project = Project.create!(
  name: 'Courier', identifier: 'courier', tracker_ids: Tracker.pluck(:id),
  enabled_module_names: %w[issue_tracking]
)
puts JSON.generate(
  api_key: admin.api_key, correlation_field_id: field.id, project: project.identifier,
  trackers: Tracker.pluck(:name, :id).to_h,
  statuses: IssueStatus.pluck(:name, :id).to_h,
  priorities: IssuePriority.pluck(:name, :id).to_h
)
