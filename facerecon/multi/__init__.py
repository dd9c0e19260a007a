"""multi"""
